"""``descend.schedules.build``: every schedule by spec, errors that name the field, the table as data."""

from __future__ import annotations

import inspect

import pytest

from descend import schedules as ds
from descend.schedules.registry import SCHEDULES, build, describe, names, resolve
from descend.spec import SpecError


def test_names_are_the_thirteen_spelled_with_hyphens() -> None:
    assert names() == [
        "constant", "step", "multi-step", "exponential", "inverse-time", "inverse-sqrt", "linear",
        "polynomial", "cosine", "cosine-restarts", "one-cycle", "cyclic", "piecewise",
    ]
    assert ds.names() == names()


@pytest.mark.parametrize(
    ("spec", "kwargs", "want"),
    [
        ("constant", {}, ds.constant(0.1)),
        ("step:every=2,gamma=0.5", {}, ds.step(0.1, 2, gamma=0.5)),
        ("multi-step:milestones=30/60/90,gamma=0.1", {}, ds.multi_step(0.1, [30, 60, 90], 0.1)),
        ("multi_step:milestones=30", {}, ds.multi_step(0.1, [30])),  # one item is a list of one
        ("Multi-Step:Milestones=30/60", {}, ds.multi_step(0.1, [30, 60])),
        ("exponential:gamma=0.9", {}, ds.exponential(0.1, 0.9)),
        ("inverse-time:rate=0.5,every=10,staircase=true", {}, ds.inverse_time(0.1, 0.5, every=10, staircase=True)),
        ("inverse-sqrt:k=4", {}, ds.inverse_sqrt(0.1, 4.0)),
        ("linear:final_lr=0.01", {}, ds.linear(0.1, 100, final_lr=0.01)),
        ("polynomial:power=2,steps=50", {}, ds.polynomial(0.1, 50, power=2.0)),  # steps: the Python name
        ("cosine:decay_steps=80", {}, ds.cosine(0.1, 80)),
        ("cosine", {"warmup": 10}, ds.warmup(ds.cosine(0.1, 90), 10)),
        ("cosine:warmup=10,warmup_start=0.01,warmup_shape=cosine", {},
         ds.warmup(ds.cosine(0.1, 90), 10, start=0.01, shape="cosine")),
        ("cosine-restarts:period=20,mult=2,final_lr=0.001", {}, ds.cosine_restarts(0.1, 20, 2, 0.001)),
        ("one-cycle:pct_start=0.25,anneal=linear,three_phase=true", {},
         ds.one_cycle(0.1, 100, pct_start=0.25, anneal="linear", three_phase=True)),
        ("cyclic:max_lr=1,steps_up=5,mode=exp_range,gamma=0.99", {}, ds.cyclic(0.1, 1.0, 5, mode="exp_range", gamma=0.99)),
        ("piecewise:boundaries=30/60,values=0.05/0.01", {}, ds.piecewise(0.1, [30, 60], [0.05, 0.01])),
        # overrides (None = not given) replace the spec's options; legacy comma strings still parse
        ("step:every=2,gamma=0.5", {"gamma": 0.25, "every": None}, ds.step(0.1, 2, gamma=0.25)),
        ("multi-step", {"milestones": "3,6"}, ds.multi_step(0.1, [3, 6])),
    ],
)
def test_build_by_spec(spec, kwargs, want) -> None:
    assert build(spec, steps=100, lr=0.1, **kwargs) == want


def test_a_schedule_object_is_returned_as_is() -> None:
    s = ds.cosine(0.3, 7)
    assert build(s, steps=100, lr=0.1) is s


@pytest.mark.parametrize(
    ("spec", "kwargs", "field", "message"),
    [
        ("sine", {}, "name", "unknown schedule 'sine'; choose one of constant, step, multi-step,"),
        ("", {}, "name", "schedule must look like NAME or NAME:key=value"),
        ("plateau", {}, "name", "plateau observes a metric"),
        ("step", {}, "every", "step needs every, e.g. step:every=30,gamma=0.1"),
        ("cyclic:max_lr=1", {}, "steps_up", "cyclic needs steps_up"),
        ("cosine:gamma=0.5", {}, "gamma", "gamma does not apply to cosine; it takes decay_steps, final_lr, warmup"),
        ("cosine:lr=0.5", {}, "lr", "lr is not an option of cosine"),
        ("step:every=2,gamma=1.5", {}, "gamma", "gamma must be in (0, 1], got 1.5"),
        ("step:every=2.5", {}, "every", "every must be an integer >= 1, got 2.5"),
        ("multi-step:milestones=60/30", {}, "milestones", "milestones must be strictly increasing integers >= 1, got [60, 30]"),
        ("multi-step:milestones=a/b", {}, "milestones", "milestones must be whole numbers separated by /"),
        ("one-cycle:anneal=sine", {}, "anneal", "anneal must be one of 'cos', 'linear', got 'sine'"),
        ("cosine:decay_steps=0", {}, "decay_steps", "steps must be an integer >= 1, got 0"),
        ("cosine:steps=5,decay_steps=5", {}, "steps", "give the horizon once"),
        ("cosine", {"warmup": 100}, "warmup", "warmup must be an integer in [1, steps - 1] = [1, 99], got 100"),
        ("cosine:warmup_start=0.01", {}, "warmup", "warmup_start and warmup_shape need warmup"),
        ("cosine:warmup=5,warmup_start=0.5", {}, "warmup_start", "warmup_start must be in [0, 0.1], got 0.5"),
        ("cosine:warmup=5,warmup_shape=steep", {}, "warmup_shape", "warmup_shape must be one of"),
        ("step:every", {}, "schedule", "schedule must be key=value pairs"),
        ("step:every=2,every=3", {}, "every", "option 'every' given twice"),
    ],
)
def test_errors_name_the_field_in_spec_words(spec, kwargs, field, message) -> None:
    with pytest.raises(SpecError) as info:
        build(spec, steps=100, lr=0.1, **kwargs)
    assert info.value.field == field
    assert message in str(info.value)
    assert "--" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_run_length_and_lr_errors() -> None:
    with pytest.raises(SpecError, match="steps must be an integer >= 1, got 0") as info:
        build("cosine", steps=0, lr=0.1)
    assert info.value.field == "steps"
    with pytest.raises(SpecError, match="lr must be") as info:
        build("cosine", steps=10, lr=-1.0)
    assert info.value.field == "lr"
    with pytest.raises(SpecError, match="schedule must be a string") as info:
        build(3, steps=10, lr=0.1)  # type: ignore[arg-type]
    assert info.value.field == "name"


def test_resolve_checks_without_a_run_length() -> None:
    assert resolve("multi-step:milestones=30/60") == ("multi_step", {"milestones": [30, 60]})
    with pytest.raises(SpecError, match="multi-step needs milestones"):
        resolve("multi-step")


def test_describe_is_the_table_as_data() -> None:
    info = describe()
    assert list(info) == list(SCHEDULES)
    ms = info["multi_step"]
    assert ms.shown == "multi-step" and ms.required == ("milestones",) and not ms.horizon
    assert ms.example == "multi-step:milestones=30/60/90,gamma=0.1"
    opts = {o.name: o for o in ms.options}
    assert opts["milestones"].kind == "list" and opts["milestones"].required
    assert opts["gamma"].default == 0.1 and opts["gamma"].kind == "number" and not opts["gamma"].required
    assert opts["warmup"].warmup and opts["warmup_shape"].choices == ("linear", "cosine", "constant")
    assert [n for n, i in info.items() if i.horizon] == ["linear", "polynomial", "cosine", "one_cycle"]
    oc = {o.name: o for o in info["one_cycle"].options}
    assert oc["anneal"].choices == ("cos", "linear") and oc["div_factor"].default == 25.0
    assert info["cyclic"].to_dict()["options"][3] == {
        "name": "mode", "kind": "choice", "default": "triangular", "help": "cyclic: triangular, triangular2 or exp_range",
        "required": False, "choices": ["triangular", "triangular2", "exp_range"], "warmup": False,
    }
    # every option's default is the Python schedule's default
    for name, (factory, _, _) in SCHEDULES.items():
        params = inspect.signature(factory).parameters
        for o in info[name].options:
            if o.name in params:
                default = params[o.name].default
                assert o.default == (None if default is inspect.Parameter.empty else default), (name, o.name)
                assert o.required == (default is inspect.Parameter.empty), (name, o.name)
    # and every example builds
    for i in info.values():
        assert isinstance(build(i.example, steps=100, lr=0.1), ds.Schedule)


def test_only_plateau_is_stateful_and_it_stays_outermost() -> None:
    assert not any(build(i.example, steps=100, lr=0.1).stateful for i in describe().values())
    p = ds.plateau(ds.cosine(0.1, 100))
    assert p.stateful and ds.plateau(ds.warmup(ds.cosine(0.1, 90), 10)).stateful
    with pytest.raises(ValueError, match=r"plateau\(...\) must be the outermost schedule"):
        ds.warmup(p, 10)
    with pytest.raises(ValueError, match=r"plateau\(...\) must be the outermost schedule"):
        0.5 * p


def test_list_options_of_whole_numbers_refuse_fractions() -> None:
    """milestones=30.7 was cut to 30 silently; 30.0 is a whole number and stays accepted."""
    from descend.schedules import build

    with pytest.raises(SpecError, match=r"milestones must be whole numbers separated by /"):
        build("multi-step:milestones=30.7/60.2", steps=100, lr=0.1)
    assert build("multi-step:milestones=30.0/60", steps=100, lr=0.1)(30) == pytest.approx(0.01)


def test_one_cycle_too_short_says_where_its_phases_end() -> None:
    from descend.schedules import one_cycle

    with pytest.raises(ValueError, match=r"phase ends -0\.1, 2\)") as e:
        one_cycle(0.1, 3)
    assert "000000" not in str(e.value)


@pytest.mark.parametrize("make, shown", [
    (lambda: ds.cosine(0.1, 100, eta_min=1e-3), "cosine() got an unexpected keyword argument 'eta_min'; it takes "
                                                "lr, steps, final_lr (torch.optim.lr_scheduler's eta_min is final_lr here)"),
    (lambda: ds.cosine_restarts(0.1, T_0=10), "torch.optim.lr_scheduler's T_0 is period here"),
    (lambda: ds.one_cycle(0.1, 100, anneal_strategy="linear"), "anneal_strategy is anneal here"),
    (lambda: ds.step(0.1, step_size=10), "step_size is every here"),
    (lambda: ds.cosine(0.1, 100, foo=1), "cosine() got an unexpected keyword argument 'foo'; it takes lr, steps, final_lr"),
])
def test_torch_keyword_names_get_descends_name(make, shown) -> None:
    with pytest.raises(TypeError) as e:
        make()
    assert shown in str(e.value)
