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
``POST /api/run``                  ``descend.lab.minimize`` for each requested run
``GET  /api/limits``               the limits below
=================================  ============================================================

All numbers come from the library: runs from :func:`descend.lab.minimize`,
schedules from :func:`descend.schedules.cli.build_schedule`, values and
contours from the landscapes. Bad input is answered with 422 and a
``message`` that names the field (``runs.0.hyper.lr: lr must be in [0,
inf), got -1.0``); a body over the size limit with 413; a computation that
runs past the time limit is stopped and answered with 422. The optimizer
runs happen on a small pool of worker threads, off the event loop, so the
server keeps answering while it computes.
"""

import asyncio
import dataclasses
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from descend import __version__, landscapes
from descend.landscapes import Landscape
from descend.schedules.registry import SCHEDULES, build_schedule

from . import catalog

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask for.

    Attributes:
        max_steps: steps per run (and per schedule preview).
        max_runs: runs (trajectories) per ``/api/run`` request.
        max_body_bytes: request body size; larger bodies get 413.
        time_limit_s: computing time per ``/api/run`` request, counted from
            when a worker starts it; a run past it is stopped (422).
        max_grid: largest ``n`` for the contour grid.
        workers: threads that run optimizers (the rest of the server stays responsive).
        queue_timeout_s: how long a request may wait for a free worker (503 after).
    """

    max_steps: int = 5000
    max_runs: int = 8
    max_body_bytes: int = 64 * 1024
    time_limit_s: float = 20.0
    max_grid: int = 200
    workers: int = 2
    queue_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        for name in ("max_steps", "max_runs", "max_body_bytes", "max_grid", "workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("time_limit_s", "queue_timeout_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if self.max_grid < 10:
            raise ValueError(f"max_grid must be at least 10, got {self.max_grid!r}")


# ---------------------------------------------------------------- errors


class FieldError(Exception):
    """Bad input found while computing: answered as 422 naming ``loc``."""

    def __init__(self, loc: tuple[str | int, ...], msg: str, kind: str = "value_error") -> None:
        super().__init__(msg)
        self.loc = loc
        self.msg = msg
        self.kind = kind


class TimeLimitExceeded(BaseException):
    """Raised inside a landscape evaluation once a request's time is up.

    A ``BaseException`` so that no ``except Exception`` on the way (in the
    library's loop) mistakes it for a numerical failure of the run.
    """


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def _unprocessable(errors: list[dict[str, Any]]) -> JSONResponse:
    message = "; ".join(f"{_field(e['loc'])}: {e['msg']}" for e in errors)
    return JSONResponse(status_code=422, content={"detail": errors, "message": message})


def _field_error(e: FieldError) -> JSONResponse:
    return _unprocessable([{"loc": list(e.loc), "msg": e.msg, "type": e.kind}])


# ---------------------------------------------------------------- body size


class BodySizeLimit:
    """ASGI middleware: answer 413 to request bodies over ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._reply(send, 400, "content-length must be an integer")
                    return
        if declared is not None and declared > self.max_bytes:
            await self._too_large(send, declared)
            return
        seen = 0
        started = False

        async def counting_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge(seen)
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge as e:
            if not started:
                await self._too_large(send, e.size)

    async def _too_large(self, send: Callable, size: int) -> None:
        await self._reply(
            send, 413,
            f"request body of {size} bytes is over the limit of {self.max_bytes} bytes",
        )

    @staticmethod
    async def _reply(send: Callable, status: int, message: str) -> None:
        response = JSONResponse(status_code=status, content={"detail": message, "message": message})
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": response.raw_headers,
        })
        await send({"type": "http.response.body", "body": response.body})


class _BodyTooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


# ---------------------------------------------------------------- request models

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
SafeInt = Annotated[int, Field(ge=-(2**53), le=2**53)]
ShortStr = Annotated[str, Field(max_length=64)]
Name = Annotated[str, Field(min_length=1, max_length=40)]
HyperValue = bool | SafeInt | FiniteFloat | ShortStr | None
OptionValue = bool | SafeInt | FiniteFloat | ShortStr | list[SafeInt | FiniteFloat] | None
Coordinate = Annotated[float, Field(allow_inf_nan=False, ge=-1e4, le=1e4)]


def _models(limits: Limits) -> dict[str, type[BaseModel]]:
    """Request models whose bounds follow ``limits``."""
    LandscapeName = Literal[tuple(landscapes.names())]  # type: ignore[valid-type]
    OptimizerName = Literal[tuple([*catalog.optimizer_catalog(), *catalog.OPTIMIZER_ALIASES])]  # type: ignore[valid-type]
    ScheduleName = Literal[tuple(SCHEDULES)]  # type: ignore[valid-type]

    class ScheduleSpec(BaseModel):
        """A schedule by name with its options (as ``descend schedule`` takes them)."""

        model_config = ConfigDict(extra="forbid")
        name: ScheduleName = Field(description="schedule name, e.g. cosine")
        options: dict[Name, OptionValue] = Field(
            default_factory=dict, max_length=12,
            description="options by name, e.g. {\"final_lr\": 0.001, \"warmup\": 50}",
        )

    class RunSpec(BaseModel):
        """One trajectory: an optimizer, its hyperparameters and an optional schedule."""

        model_config = ConfigDict(extra="forbid")
        optimizer: OptimizerName = Field(description="optimizer name (GET /api/optimizers)")
        hyper: dict[Name, HyperValue] = Field(
            default_factory=dict, max_length=16,
            description="constructor keyword arguments, e.g. {\"lr\": 0.02}",
        )
        schedule: ScheduleSpec | None = Field(default=None, description="lr schedule; none: constant lr")

    class RunRequest(BaseModel):
        """Runs from one start on one landscape, as ``descend.lab.minimize`` takes them."""

        model_config = ConfigDict(extra="forbid")
        landscape: LandscapeName = Field(description="landscape name (GET /api/landscapes)")
        start: tuple[Coordinate, Coordinate] | None = Field(
            default=None, description="start (x, y); none: the landscape's suggested start"
        )
        steps: int = Field(default=500, ge=1, le=limits.max_steps, description="step budget per run")
        tol: float = Field(
            default=1e-8, ge=0.0, le=1e6, allow_inf_nan=False,
            description="steps_to_tol counts steps until f - f* < tol",
        )
        record_every: int = Field(default=1, ge=1, le=limits.max_steps, description="keep every n-th point")
        runs: list[RunSpec] = Field(min_length=1, max_length=limits.max_runs)

    class SchedulePreview(BaseModel):
        """A schedule to evaluate at steps 0 .. steps - 1."""

        model_config = ConfigDict(extra="forbid")
        name: ScheduleName = Field(description="schedule name; constant for a fixed lr")
        lr: float = Field(default=0.1, ge=0.0, le=1e6, allow_inf_nan=False, description="base lr")
        steps: int = Field(default=500, ge=1, le=limits.max_steps)
        options: dict[Name, OptionValue] = Field(default_factory=dict, max_length=12)

    return {"ScheduleSpec": ScheduleSpec, "RunSpec": RunSpec, "RunRequest": RunRequest,
            "SchedulePreview": SchedulePreview}


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


def _guarded(land: Landscape, deadline: float, cancel: threading.Event) -> Landscape:
    """``land`` with every evaluation first checking the request's deadline.

    The functions are the landscape's own; only the check is added, so the
    numbers are exactly those of ``land``.
    """

    def guard(fn: Callable | None) -> Callable | None:
        if fn is None:
            return None

        def checked(xy: torch.Tensor) -> torch.Tensor:
            if cancel.is_set() or time.monotonic() > deadline:
                raise TimeLimitExceeded
            return fn(xy)

        return checked

    return dataclasses.replace(
        land, f=guard(land.f), grad_fn=guard(land.grad_fn), hessian_fn=guard(land.hessian_fn)
    )


def _schedule(spec: Any, steps: int, lr: Any, loc: tuple[Any, ...]) -> Any:
    """The schedule ``spec`` asks for, built by the library; FieldError naming ``loc`` if bad."""
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
        return build_schedule(spec.name, steps, lr=float(lr), **options)
    except (ValueError, TypeError, ArithmeticError) as e:
        msg = str(e)
        flag = re.search(r"--([a-z][a-z0-9-]*)", msg)
        named = getattr(e, "field", None) or (flag.group(1).replace("-", "_") if flag else None)
        if named is None:  # the library's own checks start with the argument's name
            named = next((o for o in options if re.match(rf"{re.escape(o)}\b", msg)), None)
        raise FieldError((*loc, "options", named) if named else loc, msg) from None


def _hyper_loc(loc: tuple[Any, ...], hyper: dict[str, Any], message: str) -> tuple[Any, ...]:
    """``loc`` extended with the hyperparameter the message starts with, if any."""
    for name in sorted(hyper, key=len, reverse=True):
        if message.startswith(name) and message[len(name): len(name) + 1] in (" ", ":", "="):
            return (*loc, name)
        if repr(name) in message:
            return (*loc, name)
    return loc


def prepare_runs(req: Any) -> list[dict[str, Any]]:
    """Check each run's hyperparameters and build its schedule; FieldError on bad input."""
    prepared = []
    for i, run in enumerate(req.runs):
        loc = ("body", "runs", i)
        key = catalog.resolve_optimizer(run.optimizer)
        hyper = dict(run.hyper)
        try:
            catalog.check_hyper(key, hyper)
        except (ValueError, TypeError, ArithmeticError) as e:
            msg = str(e)
            raise FieldError(_hyper_loc((*loc, "hyper"), hyper, msg), msg) from None
        schedule = None
        if run.schedule is not None:
            lr = hyper.get("lr", catalog.optimizer_hyper_default(key, "lr"))
            schedule = _schedule(run.schedule, req.steps, lr, (*loc, "schedule"))
        prepared.append({
            "optimizer": run.optimizer, "hyper": hyper, "schedule": schedule,
            "schedule_spec": run.schedule.model_dump() if run.schedule else None,
        })
    return prepared


def compute_runs(req: Any, limits: Limits, cancel: threading.Event) -> dict[str, Any]:
    """Every run of ``req`` by ``descend.lab.minimize``, within the time limit."""
    from descend.lab import minimize

    deadline = time.monotonic() + limits.time_limit_s
    prepared = prepare_runs(req)
    land = landscapes.get(req.landscape)
    guarded = _guarded(land, deadline, cancel)
    start = list(req.start) if req.start is not None else list(land.start)
    out = []
    for i, run in enumerate(prepared):
        if cancel.is_set() or time.monotonic() > deadline:
            raise TimeLimitExceeded
        try:
            result = minimize(
                guarded, x0=start, optimizer=run["optimizer"], steps=req.steps, tol=req.tol,
                schedule=run["schedule"], record_every=req.record_every, **run["hyper"],
            )
        except (ValueError, TypeError, ArithmeticError) as e:
            raise FieldError(("body", "runs", i), str(e)) from None
        out.append({
            "optimizer": run["optimizer"],
            "hyper": run["hyper"],
            "schedule": run["schedule_spec"],
            "schedule_repr": repr(run["schedule"]) if run["schedule"] is not None else None,
            "result": _json_safe(result.to_dict()),
        })
    return {
        "landscape": land.name,
        "start": start,
        "steps": req.steps,
        "tol": req.tol,
        "record_every": req.record_every,
        "runs": out,
    }


class _Pool:
    """The worker threads for runs: started on first use, stopped at shutdown, restartable."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable, *args: Any) -> Future:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="descend-run")
            return self._executor.submit(fn, *args)

    def close(self) -> None:
        """Stop the workers: queued runs are dropped, a running one ends at its next evaluation."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def _within_time_limit(req: Any, limits: Limits, cancel: threading.Event) -> dict[str, Any]:
    """:func:`compute_runs`, with running out of time turned into a 422 naming ``steps``."""
    try:
        return compute_runs(req, limits, cancel)
    except TimeLimitExceeded:
        raise FieldError(
            ("body", "steps"),
            f"the runs took longer than the time limit of {limits.time_limit_s:g} s and were "
            "stopped; ask for fewer steps or fewer runs",
            "time_limit",
        ) from None


# ---------------------------------------------------------------- the app


def create_app(limits: Limits | None = None) -> FastAPI:
    """The lab app with ``limits`` (defaults: :class:`Limits`)."""
    limits = limits or Limits()
    models = _models(limits)
    RunRequest = models["RunRequest"]
    SchedulePreview = models["SchedulePreview"]
    pool = _Pool(limits.workers)

    app = FastAPI(
        title="descend lab",
        version=__version__,
        description="Watch gradient-descent optimizers race on 2-D landscapes. "
        "Every number is computed by the descend library.",
    )
    app.state.limits = limits
    app.state.pool = pool
    app.add_middleware(BodySizeLimit, max_bytes=limits.max_body_bytes)
    app.router.add_event_handler("shutdown", pool.close)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        return _unprocessable(errors)

    @app.exception_handler(FieldError)
    async def _field(request: Request, exc: FieldError) -> JSONResponse:
        return _field_error(exc)

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

    @app.post("/api/run", tags=["runs"])
    async def run(body: RunRequest) -> dict[str, Any]:  # type: ignore[valid-type]
        """Each run by ``descend.lab.minimize``; ``runs[i].result`` is its ``Run.to_dict()``.

        Non-finite numbers (a diverged run) appear as null.
        """
        cancel = threading.Event()
        future = pool.submit(_within_time_limit, body, limits, cancel)
        try:
            return await asyncio.wait_for(
                asyncio.wrap_future(future), timeout=limits.queue_timeout_s + limits.time_limit_s
            )
        except TimeoutError:
            cancel.set()
            return JSONResponse(
                status_code=503,
                content={"detail": "the server is busy; try again in a moment",
                         "message": "the server is busy; try again in a moment"},
            )

    return app
