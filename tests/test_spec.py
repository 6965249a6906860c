"""``descend.spec``: the one ``NAME:key=value,...`` syntax of every entry point."""

from __future__ import annotations

import pytest

from descend.spec import SpecError, norm, parse, parse_options, shown, unparse, value


def test_names_normalise_and_show_with_hyphens() -> None:
    assert norm(" Multi-Step ") == "multi_step" and norm("lr_find") == "lr_find"
    assert shown("multi_step") == "multi-step" and shown("Inverse-Time") == "inverse-time"


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("true", True), ("False", False), ("none", None), ("null", None),
        ("3", 3), ("-2", -2), ("0.5", 0.5), ("1e-3", 1e-3), ("-1.5e2", -150.0),
        ("30/60/90", [30, 60, 90]), ("0.05/0.01", [0.05, 0.01]), ("1/", [1]),
        ("cos", "cos"), (" exp_range ", "exp_range"),
    ],
)
def test_values(text, want) -> None:
    got = value(text)
    assert got == want and type(got) is type(want)


def test_parse_options() -> None:
    assert parse_options("lr=0.1, Beta-1=0.8,milestones=3/6") == {"lr": 0.1, "beta_1": 0.8, "milestones": [3, 6]}
    assert parse_options("") == {} and parse_options(",,") == {}


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("lr", "options", "options must be key=value pairs separated by commas (lists joined by /)"),
        ("=3", "options", "options: empty option name in '=3'"),
        ("lr=1,LR=2", "lr", "options: option 'lr' given twice"),
        ("gamma=", "gamma", "options: option 'gamma' has no value; write gamma=VALUE"),
    ],
)
def test_parse_options_errors_name_the_field(text, field, message) -> None:
    with pytest.raises(SpecError) as info:
        parse_options(text)
    assert info.value.field == field and message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_parse() -> None:
    assert parse("Adam:lr=0.02,beta1=0.8") == ("adam", {"lr": 0.02, "beta1": 0.8})
    assert parse("multi-step") == ("multi_step", {})
    assert parse("cosine:") == ("cosine", {})
    for bad in ("", ":lr=1", "  "):
        with pytest.raises(SpecError, match="must look like NAME or NAME:key=value") as info:
            parse(bad, "optimizer")
        assert info.value.field == "name"
    with pytest.raises(SpecError, match="schedule must be a string NAME or NAME:key=value,..., got 3"):
        parse(3, "schedule")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="schedule must be key=value pairs") as info:
        parse("step:every", "schedule")
    assert info.value.field == "schedule"


@pytest.mark.parametrize(
    "spec",
    ["adam:lr=0.02,beta1=0.8", "multi-step:milestones=30/60/90,gamma=0.1", "newton:line_search=true",
     "one-cycle:anneal=linear,three_phase=false", "cosine", "x:a=none"],
)
def test_unparse_is_the_inverse_of_parse(spec) -> None:
    name, options = parse(spec)
    assert unparse(name, options) == spec
    assert parse(unparse(name, options)) == (name, options)
    assert unparse("multi_step", {"milestones": (1, 2)}) == "multi-step:milestones=1/2"


def test_a_list_written_with_commas_is_told_to_use_slashes() -> None:
    from descend.spec import SpecError, parse_options

    with pytest.raises(SpecError, match=r"got '60' \(join a list with /: milestones=30/60\)"):
        parse_options("milestones=30,60,90", "schedule")
    with pytest.raises(SpecError, match=r"got 'foo' \(write foo=VALUE\)"):
        parse_options("gamma=0.5,foo", "schedule")
