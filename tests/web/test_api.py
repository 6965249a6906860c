"""The lab's JSON API through FastAPI's test client: data, runs equal to descend.lab.minimize, limits."""

from __future__ import annotations

import inspect
import json
import re

import pytest

from descend import landscapes
from descend import optim as O
from descend.lab import minimize
from descend.lab._common import accepted_keywords
from descend.schedules.registry import SCHEDULES, build_schedule
from descend.web import Limits, create_app
from descend.web.catalog import LAB_PRESETS

from .conftest import TestClient

ALL_OPTIMIZERS = list(O.OPTIMIZERS)
STEPS = 40


def same_run(api_result: dict, run) -> None:
    """The API's run equals ``run.to_dict()`` except for the wall time."""
    expected = run.to_dict()
    got = dict(api_result)
    expected.pop("wall_time")
    got.pop("wall_time")
    assert got == expected


def test_health_and_schema(client):
    assert client.get("/health").json()["status"] == "ok"
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/api/landscapes", "/api/landscapes/{name}/grid", "/api/optimizers", "/api/schedules",
              "/api/schedule", "/api/run", "/health"):
        assert p in paths


def test_landscapes_listed_with_their_facts(client):
    data = client.get("/api/landscapes").json()
    assert [d["name"] for d in data] == landscapes.names()
    for d in data:
        land = landscapes.get(d["name"])
        assert d["title"] == land.title and d["note"] == land.note
        assert tuple(d["box"]) == land.box and tuple(d["start"]) == land.start
        assert [(m["x"], m["y"], m["kind"]) for m in d["minima"]] == [tuple(m) for m in land.minima]
        assert d["f_star"] == land.f_star and d["log_levels"] == land.log_levels
    assert client.get("/api/landscapes/rosenbrock").json()["minima"] == [{"x": 1.0, "y": 1.0, "kind": "global"}]


@pytest.mark.parametrize("name", landscapes.names())
def test_grid_holds_values_and_contours(client, name):
    g = client.get(f"/api/landscapes/{name}/grid", params={"n": 24}).json()
    land = landscapes.get(name)
    assert len(g["x"]) == len(g["y"]) == 24 and len(g["z"]) == 24 and len(g["z"][0]) == 24
    assert g["x"][0] == land.box[0] and g["x"][-1] == land.box[1]
    # z[j][i] is f(x[i], y[j]) to 6 significant digits
    want = float(land.value([g["x"][5], g["y"][17]]))
    assert g["z"][17][5] == pytest.approx(want, rel=1e-5, abs=1e-12)
    levels = g["levels"]
    assert levels == sorted(levels) and len(levels) >= 10
    assert any(c["paths"] for c in g["contours"])
    if land.log_levels:  # log-spaced: constant ratio of level - base
        gaps = [lv - g["base"] for lv in levels]
        assert gaps[2] / gaps[1] == pytest.approx(gaps[1] / gaps[0], rel=1e-6)


def test_optimizer_catalog_follows_the_signatures(client):
    data = {d["name"]: d for d in client.get("/api/optimizers").json()}
    assert list(data) == ALL_OPTIMIZERS
    for name, cls in O.OPTIMIZERS.items():
        params = inspect.signature(cls.__init__).parameters
        hyper = {h["name"]: h for h in data[name]["hyper"]}
        # the lab takes the same keywords (it follows **kwargs to the parent class)
        assert set(hyper) == set(accepted_keywords(cls)) - {"nonfinite", "impl", "state_dtype", "state_rounding"}
        for p in params.values():
            if p.name in hyper:
                assert hyper[p.name]["default"] == p.default
        assert data[name]["preset"] == LAB_PRESETS[name]
    adamw = {h["name"]: h for h in data["adamw"]["hyper"]}
    assert adamw["weight_decay"]["default"] == 0.01 and adamw["amsgrad"]["kind"] == "bool"
    adam = {h["name"]: h for h in data["adam"]["hyper"]}
    assert adam["beta1"]["min"] == 0.0 and adam["beta1"]["max"] == 1.0 and adam["beta1"]["max_open"]
    assert adam["eps_mode"]["kind"] == "choice" and "hat" in adam["eps_mode"]["choices"]
    assert adam["amsgrad"]["kind"] == "bool"
    assert adam["lr"]["ui"]["log"] is True


def test_schedule_catalog_and_preview(client):
    data = {d["name"]: d for d in client.get("/api/schedules").json()}
    assert set(data) == set(SCHEDULES)
    assert data["step"]["required"] == ["every"]
    body = {"name": "cosine", "lr": 0.1, "steps": 50, "options": {"final_lr": 0.001, "warmup": 5}}
    got = client.post("/api/schedule", json=body).json()
    s = build_schedule("cosine", 50, lr=0.1, final_lr=0.001, warmup=5)
    assert got["lr"] == [s(n) for n in range(50)] and got["repr"] == repr(s)


@pytest.mark.parametrize("name", landscapes.names())
def test_every_optimizer_on_every_landscape_equals_minimize(client, name):
    runs = [{"optimizer": o, "hyper": dict(LAB_PRESETS[o])} for o in ALL_OPTIMIZERS]
    body = {"landscape": name, "steps": STEPS, "tol": 1e-8, "runs": runs}
    r = client.post("/api/run", json=body)
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["start"] == list(landscapes.get(name).start)
    assert [x["optimizer"] for x in data["runs"]] == ALL_OPTIMIZERS
    for spec, got in zip(runs, data["runs"]):
        want = minimize(name, None, spec["optimizer"], steps=STEPS, tol=1e-8, **spec["hyper"])
        same_run(got["result"], want)


def test_start_schedule_alias_and_record_every_equal_minimize(client):
    body = {
        "landscape": "himmelblau", "start": [-1.5, 2.25], "steps": 120, "tol": 1e-6, "record_every": 7,
        "runs": [
            {"optimizer": "gd", "hyper": {"lr": 0.01}},
            {"optimizer": "adam", "hyper": {"lr": 0.1, "beta1": 0.8, "amsgrad": True},
             "schedule": {"name": "cosine", "options": {"final_lr": 0.001, "warmup": 10}}},
            {"optimizer": "momentum", "hyper": {"lr": 0.01, "style": "ema"},
             "schedule": {"name": "multi_step", "options": {"milestones": [30, 60], "gamma": 0.5}}},
        ],
    }
    data = client.post("/api/run", json=body).json()
    same_run(data["runs"][0]["result"], minimize("himmelblau", [-1.5, 2.25], "gd", steps=120, tol=1e-6,
                                                 record_every=7, lr=0.01))
    cos = build_schedule("cosine", 120, lr=0.1, final_lr=0.001, warmup=10)
    same_run(data["runs"][1]["result"], minimize("himmelblau", [-1.5, 2.25], "adam", steps=120, tol=1e-6,
                                                 record_every=7, schedule=cos, lr=0.1, beta1=0.8,
                                                 amsgrad=True))
    ms = build_schedule("multi_step", 120, lr=0.01, milestones=[30, 60], gamma=0.5)
    same_run(data["runs"][2]["result"], minimize("himmelblau", [-1.5, 2.25], "momentum", steps=120,
                                                 tol=1e-6, record_every=7, schedule=ms, lr=0.01,
                                                 style="ema"))
    assert data["runs"][1]["schedule_repr"] == repr(cos)


def test_diverged_run_is_json_with_nulls(client):
    body = {"landscape": "rosenbrock", "steps": 50, "runs": [{"optimizer": "sgd", "hyper": {"lr": 0.5}}]}
    r = client.post("/api/run", json=body)
    assert r.status_code == 200
    res = r.json()["runs"][0]["result"]
    assert res["diverged"] is True and res["steps_to_tol"] is None
    same_run(res, minimize("rosenbrock", None, "sgd", steps=50, lr=0.5))


def error(r, status: int = 422) -> tuple[str, list]:
    assert r.status_code == status, r.text
    body = r.json()
    return body["message"], body.get("detail")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"landscape": "nowhere", "runs": [{"optimizer": "adam"}]}, "landscape"),
        ({"landscape": "bowl", "runs": [{"optimizer": "lbfgs"}]}, "runs.0.optimizer"),
        ({"landscape": "bowl", "steps": 5001, "runs": [{"optimizer": "adam"}]}, "steps"),
        ({"landscape": "bowl", "steps": 0, "runs": [{"optimizer": "adam"}]}, "steps"),
        ({"landscape": "bowl", "runs": []}, "runs"),
        ({"landscape": "bowl", "runs": [{"optimizer": "adam"}] * 9}, "runs"),
        ({"landscape": "bowl", "tol": -1, "runs": [{"optimizer": "adam"}]}, "tol"),
        ({"landscape": "bowl", "start": [0, 1e9], "runs": [{"optimizer": "adam"}]}, "start.1"),
        ({"landscape": "bowl", "runs": [{"optimizer": "adam", "hyper": {"lr": -1}}]}, "runs.0.hyper.lr"),
        ({"landscape": "bowl", "runs": [{"optimizer": "adam", "hyper": {"beta1": 1.0}}]}, "runs.0.hyper.beta1"),
        ({"landscape": "bowl", "runs": [{"optimizer": "sgd"}, {"optimizer": "adam", "hyper": {"eps_mode": "x"}}]},
         "runs.1.hyper.eps_mode"),
        ({"landscape": "bowl", "runs": [{"optimizer": "adam", "hyper": {"impl": "fused"}}]}, "runs.0.hyper.impl"),
        ({"landscape": "bowl", "runs": [{"optimizer": "newton", "hyper": {"max_backtracks": 10**6}}]},
         "runs.0.hyper.max_backtracks"),
        ({"landscape": "bowl", "runs": [{"optimizer": "adam", "schedule": {"name": "step"}}]},
         "runs.0.schedule.options.every"),
        ({"landscape": "bowl", "runs": [{"optimizer": "adam", "schedule": {"name": "step", "options": {"every": 5, "gamma": 2}}}]},
         "runs.0.schedule.options.gamma"),
        ({"landscape": "bowl", "runs": [{"optimizer": "adam", "schedule": {"name": "sine"}}]}, "runs.0.schedule.name"),
        ({"landscape": "bowl", "extra": 1, "runs": [{"optimizer": "adam"}]}, "extra"),
    ],
)
def test_bad_input_is_422_naming_the_field(client, body, field):
    message, detail = error(client.post("/api/run", json=body))
    assert message.startswith(f"{field}:") or f"; {field}:" in message, message
    assert any(".".join(str(p) for p in d["loc"][1:]) == field for d in detail)


def test_bad_json_and_non_finite_numbers_are_422(client):
    bad = client.post("/api/run", content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 422
    nan = b'{"landscape": "bowl", "start": [NaN, 0], "runs": [{"optimizer": "adam"}]}'
    message, _ = error(client.post("/api/run", content=nan, headers={"content-type": "application/json"}))
    assert message.startswith("start.0:")
    inf = b'{"landscape": "bowl", "runs": [{"optimizer": "adam", "hyper": {"lr": Infinity}}]}'
    assert client.post("/api/run", content=inf, headers={"content-type": "application/json"}).status_code == 422


def test_schedule_preview_errors_name_the_option(client):
    message, _ = error(client.post("/api/schedule", json={"name": "exponential", "steps": 10}))
    assert message.startswith("options.gamma:")
    message, _ = error(client.post("/api/schedule", json={"name": "cosine", "steps": 10, "options": {"warmup": 10}}))
    assert message.startswith("options.warmup:")
    message, _ = error(client.post("/api/schedule", json={"name": "cosine", "steps": 10, "lr": -1}))
    assert message.startswith("lr:")


def test_body_size_limit_is_413(client):
    big = json.dumps({"landscape": "bowl", "runs": [{"optimizer": "adam"}], "pad": "x" * 70_000})
    r = client.post("/api/run", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["message"]
    assert client.get("/health").status_code == 200


def test_time_limit_stops_the_run_with_422():
    app = create_app(Limits(time_limit_s=0.05))
    with TestClient(app) as c:
        body = {"landscape": "rosenbrock", "steps": 5000, "tol": 0, "runs": [{"optimizer": "adam"}] * 8}
        message, _ = error(c.post("/api/run", json=body))
        assert re.match(r"steps: the runs took longer than the time limit of 0\.05 s", message)
        small = {"landscape": "bowl", "steps": 3, "runs": [{"optimizer": "adam"}]}
        assert c.post("/api/run", json=small).status_code == 200


def test_limits_are_published_and_configurable():
    app = create_app(Limits(max_steps=100, max_runs=2))
    with TestClient(app) as c:
        assert c.get("/api/limits").json()["max_steps"] == 100
        assert c.post("/api/run", json={"landscape": "bowl", "steps": 101, "runs": [{"optimizer": "sgd"}]}).status_code == 422
        assert c.post("/api/run", json={"landscape": "bowl", "runs": [{"optimizer": "sgd"}] * 3}).status_code == 422
    with pytest.raises(ValueError, match="max_steps"):
        Limits(max_steps=0)


def test_server_keeps_serving_after_bad_requests(client):
    for body in (b"", b"[]", b"null", b'{"runs": 5}', b"\xff\xfe"):
        assert client.post("/api/run", content=body, headers={"content-type": "application/json"}).status_code == 422
    assert client.get("/api/landscapes/rosenbrock/grid", params={"n": 5}).status_code == 422
    assert client.get("/api/landscapes/rosenbrock/grid", params={"n": 10_000}).status_code == 422
    assert client.get("/health").json()["status"] == "ok"
    ok = client.post("/api/run", json={"landscape": "bowl", "steps": 5, "runs": [{"optimizer": "adam"}]})
    assert ok.status_code == 200


def test_page_and_assets_are_served_from_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        assert client.get(asset).status_code == 200
    for name in ("index.html", "app.js", "style.css"):
        text = client.get(f"/static/{name}").text
        # offline: nothing is fetched from another host (the SVG namespace is a name, not a fetch)
        urls = set(re.findall(r"https?://[^\s\"'`)]+", text)) - {"http://www.w3.org/2000/svg"}
        assert not urls, f"{name} refers to {urls}"


@pytest.mark.parametrize("n", [90, 160])
def test_rosenbrock_contours_do_not_break_into_loops_along_the_floor(client, n):
    import numpy as np

    g = client.get("/api/landscapes/rosenbrock/grid", params={"n": n}).json()
    assert client.get("/api/landscapes/rosenbrock").json()["page_grid"] == 160
    for c in g["contours"]:
        loops = [p for p in c["paths"] if len(p) > 3 and np.allclose(p[0], p[-1])]
        assert len(loops) <= 1, (c["level"], len(loops))   # one minimum: at most one closed loop per level


def test_costs_are_measured_per_optimizer(client):
    costs = client.get("/api/costs").json()
    assert set(costs["per_step_s"]) == set(O.names())
    assert all(v > 0 for v in costs["per_step_s"].values())
    assert costs["per_step_s"]["gd"] == costs["per_step_s"]["sgd"]
    assert costs["scale"] > 0 and costs["overhead_s"] > 0


def test_each_cost_is_a_timed_run_of_that_optimizer(monkeypatch):
    """The per-step cost is the faster of two timed PROBE_STEPS runs of each optimizer by the lab,
    over the steps taken (a clock that advances by a known amount per reading: no timing asserted)."""
    from types import SimpleNamespace

    from descend.web import costs as costs_module

    runs, ticks = [], iter([0, 9, 0, 4, 0, 6] * len(O.OPTIMIZERS))  # warm-up 9, then 4 and 6 per run

    def minimize_many(landscape, specs, steps, tol):
        runs.append((landscape, specs[0]["optimizer"], steps))
        return [SimpleNamespace(steps=steps)]

    monkeypatch.setattr(costs_module.lab, "minimize_many", minimize_many)
    monkeypatch.setattr(costs_module.time, "perf_counter", lambda: float(next(ticks)))
    table = costs_module.Costs().per_step()
    assert table == {name: 4.0 / costs_module.PROBE_STEPS for name in O.OPTIMIZERS}
    n = costs_module.PROBE_STEPS
    assert runs == [(costs_module.PROBE_LANDSCAPE, name, k) for name in O.OPTIMIZERS for k in (5, n, n)]


def test_catalog_comes_from_the_registries(client):
    opts = {o["name"]: o for o in client.get("/api/optimizers").json()}
    for name, entry in opts.items():
        assert entry["display"] == O.display(name)
        assert entry["aliases"] == [a for a, key in O.ALIASES.items() if key == name]
    assert opts["sgd"]["aliases"] == ["gd"]
    scheds = {s["name"]: s for s in client.get("/api/schedules").json()}
    from descend import schedules

    assert list(scheds) == list(schedules.describe())
    for name, info in schedules.describe().items():
        assert [o["name"] for o in scheds[name]["options"]] == [o.name for o in info.options]


def test_note003_page_start_is_where_gradient_descent_runs_off(client):
    info = client.get("/api/landscapes/note003").json()
    body = {"landscape": "note003", "start": info["page_start"], "steps": 2000, "tol": 1e-6,
            "runs": [{"optimizer": "gd", "hyper": {"lr": 2e-3}}]}
    result = client.post("/api/run", json=body).json()["runs"][0]["result"]
    assert result["diverged"] and result["path"][-1][1] < info["box"][2]   # off to y -> -inf, as the note says


def test_the_cost_scale_counts_the_steps_runs_really_took():
    from descend.web.costs import OVERHEAD_S, Costs

    costs = Costs()
    costs._per_step = {**{k: 1e-3 for k in O.OPTIMIZERS}, "newton": 2e-2}   # as if measured
    # Newton converged after 5 steps, Adam ran 200: 5 * 20 ms + 200 * 1 ms = 0.3 s predicted,
    # and OVERHEAD_S of the request's 0.6 s was not the steps'
    costs.observe(["newton", "adam"], [5, 200], 0.6 + OVERHEAD_S)
    assert costs.scale == pytest.approx(2.0)
    # the estimate is for the full budget: a run may not stop early
    assert costs.estimate(["newton", "gd"], 1000) == pytest.approx(OVERHEAD_S + 1000 * 2.0 * 0.021)


def test_runs_of_one_optimizer_cost_one_lockstep_step():
    from descend.web.costs import OVERHEAD_S, Costs

    costs = Costs()
    costs._per_step = {**{k: 1e-3 for k in O.OPTIMIZERS}, "newton": 2e-2}   # as if measured
    assert costs.estimate(["newton"] * 8, 1000) == pytest.approx(OVERHEAD_S + 1000 * 0.02)
    assert costs.estimate(["gd", "sgd", "adam"], 1000) == pytest.approx(OVERHEAD_S + 1000 * 0.002)  # gd is sgd
    # eight Newton runs of up to 100 steps predicted as one: 100 * 20 ms = 2 s
    costs.observe(["newton"] * 8, [100, 40, 100, 100, 100, 100, 100, 100], 1.0 + OVERHEAD_S)
    assert costs.scale == pytest.approx(0.5)


def test_the_cost_probe_measures_steps_not_the_setup():
    from descend import lab
    from descend.web.costs import PROBE_LANDSCAPE, PROBE_STEPS

    # every optimizer takes every probe step there: a run that stopped would time its setup
    for name in O.OPTIMIZERS:
        (run,) = lab.minimize_many(PROBE_LANDSCAPE, [{"optimizer": name}], steps=PROBE_STEPS, tol=None)
        assert run.steps == PROBE_STEPS and not run.diverged, name
