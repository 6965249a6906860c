"""The lab's web app: a JSON API over :mod:`descend` and one page that draws what it returns.

``create_app(limits=Limits(...))`` builds the FastAPI app:

=================================  ============================================================
``GET  /``                         the lab page (``static/index.html``; assets under ``/static``)
``GET  /health``                   ``{"status": "ok", ...}``
``GET  /api/landscapes``           every landscape: title, note, box, start, minima, f*
``GET  /api/landscapes/{name}``    one landscape
``GET  /api/landscapes/{name}/grid?n=80``  values on an n x n grid and contour lines
``GET  /api/optimizers``           every optimizer with its hyperparameters, defaults, ranges
``GET  /api/schedules``            every schedule with its options
``POST /api/schedule``             a schedule's lr at steps 0 .. steps-1 (the preview)
``POST /api/run``                  every requested run by ``descend.lab.minimize_many`` (lockstep)
``GET  /api/costs``                measured seconds per step of each optimizer (the page's estimate)
``GET  /api/limits``               the limits below
=================================  ============================================================

All numbers come from the library: runs from :func:`descend.lab.minimize_many`
(equal to :func:`descend.lab.minimize` run by run), schedules from
:func:`descend.schedules.build`, values and contours from the landscapes.

Errors read as one sentence per field: 422 with a ``message`` that names the
field (``runs.0.hyper.lr: lr must be in [0, inf), got -1.0``; ``body is not
valid JSON at character 22``); 413 for a body over the size limit, declared
or streamed; 408 for a body that stops arriving; 422 naming ``steps`` for a
computation past the time limit.

Runs are computed fairly (:mod:`descend.web.jobs`): one request at a time per
page (header ``X-Descend-Session``, else the connection), a newer one
cancelling the older (409), and requests of different pages taking turns in
chunks of ``chunk_s`` seconds, least computed first, so a small run is never
queued behind heavy ones. A client that disconnects has its computation
stopped within one chunk.
"""

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from descend import __version__, lab, landscapes
from descend import schedules as S
from descend.landscapes import Landscape

from . import catalog
from .costs import Costs, one_thread
from .errors import BodyLimits, FieldError, field_error, message, unprocessable, validation_errors
from .jobs import Busy, Cancelled, Job, OutOfTime, Scheduler
from .models import SESSION_HEADER, request_models

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask for.

    Attributes:
        max_steps: steps per run (and per schedule preview).
        max_runs: runs (trajectories) per ``/api/run`` request.
        max_body_bytes: request body size; larger bodies get 413.
        time_limit_s: computing time per ``/api/run`` request (its own turns,
            not its waiting); a run past it is stopped (422).
        max_grid: largest ``n`` for the contour grid.
        workers: requests that compute at the same time (the rest wait their turn).
        queue_timeout_s: how long a request may wait in all (503 after).
        body_timeout_s: a request body that stops arriving for this long gets 408.
        chunk_s: a request computes for at most this long before the next one's turn.
        max_jobs: requests computing or waiting at once (503 beyond).
    """

    max_steps: int = 5000
    max_runs: int = 8
    max_body_bytes: int = 64 * 1024
    time_limit_s: float = 20.0
    max_grid: int = 200
    workers: int = 2
    queue_timeout_s: float = 120.0
    body_timeout_s: float = 5.0
    chunk_s: float = 0.02
    max_jobs: int = 256

    def __post_init__(self) -> None:
        for name in ("max_steps", "max_runs", "max_body_bytes", "max_grid", "workers", "max_jobs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("time_limit_s", "queue_timeout_s", "body_timeout_s", "chunk_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if self.max_grid < 10:
            raise ValueError(f"max_grid must be at least 10, got {self.max_grid!r}")


# ---------------------------------------------------------------- computing


def _json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as None and tensors/tuples as lists (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _json_safe(value.tolist())
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return _json_safe(value.item())
    if hasattr(value, "tolist"):
        return _json_safe(value.tolist())
    return value


def _guarded(land: Landscape, job: Job) -> Landscape:
    """``land`` with every evaluation first passing the job's checkpoint.

    The functions are the landscape's own; only the checkpoint is added (stop
    when cancelled or out of time, give the slot up when the chunk is used), so
    the numbers are exactly those of ``land``.
    """

    def guard(fn: Callable | None) -> Callable | None:
        if fn is None:
            return None

        def checked(xy: torch.Tensor) -> torch.Tensor:
            job.checkpoint()
            return fn(xy)

        checked.__wrapped__ = fn  # type: ignore[attr-defined]  # (the lab sees the landscape's own)
        return checked

    f, grad_fn = guard(land.f), guard(land.grad_fn)
    fused = land.value_grad_fn
    of = getattr(fused, "of", None)
    if fused is not None and (of is None or (of[0] is land.f and of[1] is land.grad_fn)):
        inner = fused

        def fused_checked(xy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            job.checkpoint()
            return inner(xy)

        fused_checked.of = (f, grad_fn)  # type: ignore[attr-defined]  # still the landscape's own pair
        fused_checked.__wrapped__ = inner  # type: ignore[attr-defined]
        fused = fused_checked
    else:
        fused = None
    return dataclasses.replace(
        land, f=f, grad_fn=grad_fn, hessian_fn=guard(land.hessian_fn), value_grad_fn=fused
    )


def _schedule(spec: Any, steps: int, lr: Any, loc: tuple[Any, ...]) -> Any:
    """The schedule ``spec`` asks for, built by :func:`descend.schedules.build`; FieldError if bad.

    The library's :class:`~descend.spec.SpecError` names the bad option in
    ``field``; the error points there.
    """
    options = dict(spec.options)
    for reserved in ("name", "steps", "lr"):
        if reserved in options:
            raise FieldError(
                (*loc, "options", reserved),
                f"{reserved!r} is not a schedule option here: the schedule's lr is the "
                "optimizer's lr and its steps are the run's steps",
            )
    if isinstance(lr, bool) or not isinstance(lr, (int, float)):
        raise FieldError(loc, f"a schedule needs a numeric lr, got {lr!r}")
    try:
        return S.build(spec.name, steps=steps, lr=float(lr), **options)
    except (ValueError, TypeError, ArithmeticError) as e:
        named = getattr(e, "field", None)
        known = {o["name"] for o in catalog.schedule_catalog().get(spec.name, {}).get("options", ())}
        if named not in options and named not in known:
            named = None
        raise FieldError((*loc, "options", named) if named else loc, str(e)) from None


def prepare_runs(req: Any) -> list[dict[str, Any]]:
    """Check each run's hyperparameters and build its schedule; FieldError on bad input."""
    prepared = []
    for i, run in enumerate(req.runs):
        loc = ("body", "runs", i)
        hyper = dict(run.hyper)
        try:
            catalog.check_hyper(run.optimizer, hyper)
        except (ValueError, TypeError, ArithmeticError) as e:
            msg = str(e)
            named = getattr(e, "field", None) or next(
                (h for h in sorted(hyper, key=len, reverse=True)
                 if msg.startswith(h) and msg[len(h): len(h) + 1] in (" ", ":", "=")), None)
            raise FieldError((*loc, "hyper", named) if named in hyper else (*loc, "hyper"), msg) from None
        schedule = None
        if run.schedule is not None:
            lr = hyper.get("lr", catalog.optimizer_hyper_default(run.optimizer, "lr"))
            schedule = _schedule(run.schedule, req.steps, lr, (*loc, "schedule"))
        prepared.append({
            "optimizer": run.optimizer, "hyper": hyper, "schedule": schedule,
            "schedule_spec": run.schedule.model_dump() if run.schedule else None,
        })
    return prepared


def _minimize_all(land: Landscape, start: list[float], req: Any, prepared: list[dict], job: Job) -> list:
    """Every run by ``descend.lab.minimize_many``: all in lockstep, one evaluation per step.

    The job's checkpoint runs before every evaluation and between the lab's
    chunks of steps (its ``cancel``), so a cancelled job stops within one chunk.
    """
    common = {"x0": start, "steps": req.steps, "tol": req.tol, "record_every": req.record_every}
    runs = [{"optimizer": r["optimizer"], "schedule": r["schedule"], **r["hyper"]} for r in prepared]
    try:
        return lab.minimize_many(land, runs, cancel=job.cancelled, **common)
    except lab.Cancelled:
        raise Cancelled(job.reason or "cancelled") from None
    except (ValueError, TypeError, ArithmeticError) as e:
        index = getattr(e, "index", None)
        msg = str(e).removeprefix(f"runs[{index}]: ")
        raise FieldError(("body", "runs", index) if index is not None else ("body", "runs"), msg) from None


def compute_runs(req: Any, job: Job, costs: Costs | None = None) -> dict[str, Any]:
    """Every run of ``req`` computed by the lab, in the job's turns."""
    one_thread()
    prepared = prepare_runs(req)
    land = landscapes.get(req.landscape)
    start = list(req.start) if req.start is not None else list(land.start)
    t0 = time.perf_counter()
    results = _minimize_all(_guarded(land, job), start, req, prepared, job)
    lab_s = time.perf_counter() - t0
    if costs is not None:
        costs.observe([r["optimizer"] for r in prepared], [r.steps for r in results], job.computed_s())
    out = [
        {
            "optimizer": run["optimizer"],
            "hyper": run["hyper"],
            "schedule": run["schedule_spec"],
            "schedule_repr": repr(run["schedule"]) if run["schedule"] is not None else None,
            "result": result.to_dict(),  # JSON-ready: lists, non-finite numbers as None
        }
        for run, result in zip(prepared, results, strict=True)
    ]
    return {
        "landscape": land.name,
        "start": start,
        "steps": req.steps,
        "tol": req.tol,
        "record_every": req.record_every,
        "runs": out,
        "timing": {"lab_s": lab_s, "computed_s": job.computed_s(), "turns": job.turns},
    }


def _out_of_time(limits: Limits) -> FieldError:
    return FieldError(
        ("body", "steps"),
        f"the runs took longer than the time limit of {limits.time_limit_s:g} s and were "
        "stopped; ask for fewer steps or fewer runs",
        "time_limit",
    )


def client_key(request: Request) -> str:
    """Whose request this is: the page's session id, or else the connection."""
    session = request.headers.get(SESSION_HEADER, "").strip()
    if session and len(session) <= 64 and session.replace("-", "").replace("_", "").isalnum():
        return f"session:{session}"
    client = request.scope.get("client") or ("?", 0)
    return f"connection:{client[0]}:{client[1]}"


async def wait_for_job(request: Request, job: Job, limits: Limits) -> Any:
    """The job's result, or an answer: the client gone (job cancelled), superseded (409), too slow."""
    t0 = time.perf_counter()
    watch = asyncio.ensure_future(_disconnected(request))
    result = asyncio.wrap_future(job.future)
    try:
        done, _ = await asyncio.wait({result, watch}, timeout=limits.queue_timeout_s + limits.time_limit_s,
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
    if result not in done:
        job.cancel("disconnected" if watch in done else "waited too long")
        if watch in done:
            return message(499, "the client closed the connection")
        return message(503, "the server is busy; try again in a moment")
    try:
        out = result.result()
    except Cancelled as e:
        return message(409, f"cancelled: {e.reason}", reason=e.reason)
    except OutOfTime:
        raise _out_of_time(limits) from None
    out["timing"]["total_s"] = time.perf_counter() - t0
    out["timing"]["waited_s"] = max(0.0, out["timing"]["total_s"] - out["timing"]["computed_s"])
    return JSONResponse(out)  # already JSON-safe: skip FastAPI's slower encoder


async def _disconnected(request: Request) -> None:
    """Returns when the client goes away (after the body, ``receive`` yields only that)."""
    while True:
        msg = await request.receive()
        if msg.get("type") == "http.disconnect":
            return


# ---------------------------------------------------------------- the app


def create_app(limits: Limits | None = None) -> FastAPI:
    """The lab app with ``limits`` (defaults: :class:`Limits`)."""
    limits = limits or Limits()
    models = request_models(limits)
    RunRequest = models["RunRequest"]
    SchedulePreview = models["SchedulePreview"]
    scheduler = Scheduler(limits.workers, limits.chunk_s, limits.max_jobs)
    costs = Costs()

    app = FastAPI(
        title="descend lab",
        version=__version__,
        description="Watch gradient-descent optimizers race on 2-D landscapes. "
        "Every number is computed by the descend library.",
    )
    app.state.limits = limits
    app.state.scheduler = scheduler
    app.state.costs = costs
    app.add_middleware(BodyLimits, max_bytes=limits.max_body_bytes, timeout_s=limits.body_timeout_s)
    app.router.add_event_handler("shutdown", scheduler.close)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return unprocessable(validation_errors(list(exc.errors())))

    @app.exception_handler(FieldError)
    async def _field(request: Request, exc: FieldError) -> JSONResponse:
        return field_error(exc)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/health", tags=["server"])
    async def health() -> dict[str, Any]:
        """Liveness: ``{"status": "ok"}``."""
        return {"status": "ok", "version": __version__}

    @app.get("/api/limits", tags=["server"])
    async def get_limits() -> dict[str, Any]:
        """The limits every request is held to."""
        return dataclasses.asdict(limits)

    @app.get("/api/landscapes", tags=["landscapes"])
    async def list_landscapes() -> list[dict[str, Any]]:
        """Every landscape: name, title, note, box, start, minima, saddles, f*, log_levels."""
        return [catalog.landscape_info(n) for n in landscapes.names()]

    LandscapeName = Literal[tuple(landscapes.names())]  # type: ignore[valid-type]

    @app.get("/api/landscapes/{name}", tags=["landscapes"])
    async def get_landscape(name: Annotated[LandscapeName, PathParam()]) -> dict[str, Any]:
        """One landscape's facts."""
        return catalog.landscape_info(name)

    @app.get("/api/landscapes/{name}/grid", tags=["landscapes"])
    def landscape_grid(
        name: Annotated[LandscapeName, PathParam()],
        n: Annotated[int, Query(ge=10, le=limits.max_grid, description="grid points per side")] = 80,
    ) -> dict[str, Any]:
        """``f`` on an ``n`` x ``n`` grid over the landscape's box, with contour levels and lines."""
        return catalog.landscape_grid(name, n)

    @app.get("/api/optimizers", tags=["optimizers"])
    async def list_optimizers() -> list[dict[str, Any]]:
        """Every optimizer with its hyperparameters: kind, default, allowed range, slider range."""
        return list(catalog.optimizer_catalog().values())

    @app.get("/api/schedules", tags=["schedules"])
    async def list_schedules() -> list[dict[str, Any]]:
        """Every schedule with its options (name, kind, help, required)."""
        return list(catalog.schedule_catalog().values())

    @app.post("/api/schedule", tags=["schedules"])
    def schedule_preview(body: SchedulePreview) -> dict[str, Any]:  # type: ignore[valid-type]
        """The schedule's lr at steps ``0 .. steps - 1``, as the run would use it."""
        schedule = _schedule(body, body.steps, body.lr, ("body",))
        try:
            values = [schedule(n) for n in range(body.steps)]
        except (ValueError, TypeError, ArithmeticError) as e:
            raise FieldError(("body",), str(e)) from None
        return {"name": body.name, "repr": repr(schedule), "steps": body.steps,
                "lr": _json_safe(values)}

    @app.get("/api/costs", tags=["server"])
    def get_costs() -> dict[str, Any]:
        """Measured seconds per step of each optimizer on this server, for the page's estimates.

        A request's time is about ``overhead_s + steps * sum(per_step_s[optimizer] for each run)``;
        the figures follow the runs the server has computed since it started.
        """
        return costs.table()

    @app.post("/api/run", tags=["runs"])
    async def run(body: RunRequest, request: Request) -> Any:  # type: ignore[valid-type]
        """Every run by ``descend.lab`` (all in lockstep); ``runs[i].result`` is its ``Run.to_dict()``.

        Non-finite numbers (a diverged run) appear as null. Requests of one page
        (header ``X-Descend-Session``, else one connection) run one at a time: a
        newer one cancels the older (409). Requests of different pages take turns
        in short chunks, least computed first.
        """
        try:
            job = scheduler.submit(client_key(request), lambda j: compute_runs(body, j, costs), limits.time_limit_s)
        except Busy:
            return message(503, "the server is busy; try again in a moment")
        return await wait_for_job(request, job, limits)

    return app
