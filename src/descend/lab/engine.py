r"""The rows engine: every trajectory of the lab is a row of one tensor, and all rows move in lockstep.

:func:`run_rows` is the one loop behind :func:`~descend.lab.minimize` (one
row), :func:`~descend.lab.run_many` (N rows, one optimizer) and
:func:`~descend.lab.minimize_many` (N rows, any optimizers). Each step it

1. evaluates ``f`` and its gradient **once for all rows** (``X`` has shape
   ``(N, *shape)``; the landscape's closed forms or ``vmap`` of autograd);
2. lets each *group* step its rows: rows with the same optimizer class and
   the same options (apart from numbers) share one optimizer whose parameter
   is their slice of ``X`` and whose number-valued options that differ between
   rows are ``(n, 1)`` tensors. Newton and optimizers that are not element-wise
   step their row on its own. A descend optimizer's eager rule is called
   directly (``rule(p, g, *state, **hypers)``, as its ``step()`` calls it, see
   :class:`_Group`), without the per-step planning, checks and in-place copies
   of the public ``step()``. When every group does so on a built-in landscape
   (closed forms), nothing needs autograd and the loop runs in inference mode;
3. keeps ``X``, ``f`` and the gradient of the step; the rows are measured
   (``f``, ``||grad f||``, converged, diverged) once per block of steps.

**Stopping.** At every step ``t`` (and at the start), per row:

* converged: ``f(x_t) - f_star < tol`` when ``f_star`` is known, else
  ``||grad f(x_t)|| < tol`` (``tol=None`` never converges);
* diverged: ``f(x_t)`` or the gradient is NaN or infinite, or some
  ``|x_t[j]| > bound`` (by default each row's own: see :meth:`Objective.bound_for`).

A row stops at the first step where either holds (with ``halt=False`` no row
ever stops: every row takes every step, NaN and all, as the tour's rows do).
The rule is evaluated for a whole block of up to :data:`BLOCK` steps at once, with one read to the
host: the rows are independent (every operation is row by row, hyperparameters
are per-row tensors), so a row that stopped inside a block may go on moving
until the block ends without touching the others, and its record is cut at
its stop step. A group whose rows have all stopped takes no more steps.
Groups that must not step past their row's stop (Newton, whose line search
would warn at a minimum, and optimizer classes outside descend) make the
block one step long while they run. Newton is a function of the point alone:
once an accepted step leaves its point unchanged bit for bit (it reached a
fixed point, e.g. the minimum) and no schedule changes its lr, every later
step would repeat it, so the engine repeats its step length instead of
recomputing it. Every row equals the same row run alone bit for bit
(``tests/lab`` holds this against a plain one-trajectory loop).

**Chunks.** Every :data:`CHUNK` steps (a multiple of the block) the loop
calls ``cancel()`` (raising :class:`Cancelled` when it returns True) and
``progress(t, steps)``.

**Caps.** ``steps`` is at most :data:`MAX_STEPS`; a run records at most
:data:`MAX_RECORDS` points per row (raise ``record_every`` for longer runs).
"""

from __future__ import annotations

import functools
import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import optim as O
from ..optim.registry import accepted_keywords
from ..schedules import Schedule, Scheduler
from .objective import Objective
from .results import Run

Tensor = torch.Tensor
CHUNK = 250
BLOCK = 250  # steps measured at once (a divisor of CHUNK; fewer for very large rows)
_BUILTIN = "descend.landscapes.functions"  # the built-in landscapes: closed forms, no autograd
BLOCK_BYTES = 64 << 20  # at most this much of X and gradients held for one block
MAX_STEPS = 1_000_000
MAX_RECORDS = 200_000


class Cancelled(Exception):
    """The caller's ``cancel()`` returned True; the computation stopped between two chunks of steps."""


@dataclass
class Row:
    """One requested trajectory: an optimizer with its options, an optional schedule and a start."""

    optimizer: Any
    hyper: dict[str, Any]
    schedule: Schedule | None
    x0: Tensor
    cls: type = field(init=False)
    display: str = field(init=False)

    def __post_init__(self) -> None:
        self.cls, self.display, _ = O.resolve(self.optimizer)
        if self.schedule is not None and not isinstance(self.schedule, Schedule):
            raise ValueError(
                f"schedule must be None or a descend schedule such as cosine(0.1, 1000), got {self.schedule!r}"
            )


@dataclass
class Stats:
    """Where the time of :func:`run_rows` went: ``step_time`` inside the optimizers, ``wall_time`` in all."""

    wall_time: float = 0.0
    step_time: float = 0.0
    steps: int = 0
    groups: int = 0

    @property
    def overhead(self) -> float:
        """Seconds outside the optimizers' steps: evaluation, measuring, recording, Python."""
        return self.wall_time - self.step_time


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_)


def _elementwise(cls: type) -> bool:
    """Rows of an ``(N, d)`` parameter stay independent: the element-wise descend rules."""
    return issubclass(cls, O.Optimizer) and getattr(cls, "_tensor_hypers", False)


def _lr_of(opt: torch.optim.Optimizer) -> Any:
    return opt.param_groups[0]["lr"]


def _as_float(lr: Any) -> float:
    return float(lr.reshape(-1)[0]) if isinstance(lr, Tensor) else float(lr)


def build(cls: type, params: list[Tensor], hyper: dict[str, Any]) -> torch.optim.Optimizer:
    """The optimizer through :func:`descend.optim.build`, with the lab's ``impl="eager"`` and
    ``nonfinite="ignore"`` (the lab detects non-finite values itself; Newton keeps its policy)."""
    allowed = accepted_keywords(cls)
    kwargs = dict(hyper)
    if "impl" in allowed:
        kwargs.setdefault("impl", "eager")
    if "nonfinite" in allowed and cls is not O.Newton:
        kwargs.setdefault("nonfinite", "ignore")
    return O.build(cls, params, **kwargs)


def _unwrapped(fn: Any) -> Any:
    return getattr(fn, "__wrapped__", fn)


def _direct_rule(opt: torch.optim.Optimizer, dtype: torch.dtype, lookahead: bool) -> bool:
    """Whether the group's steps can call the optimizer's rule directly, exactly as its ``step()`` would.

    That is: a descend optimizer on the eager path, without gradient checks, whose ``step``,
    ``_update``, ``_apply``, ``_rule_step`` and ``_point`` are the base class's (or Nesterov's without
    look-ahead, which defers to them), one param group, float32/float64, state kept in that dtype.
    """
    cls = type(opt)
    if not isinstance(opt, O.Optimizer) or isinstance(opt, O.Newton) or lookahead:
        return False
    if getattr(opt, "impl", None) != "eager" or getattr(opt, "nonfinite", None) != "ignore":
        return False
    if len(opt.param_groups) != 1 or dtype not in (torch.float32, torch.float64):
        return False
    if getattr(opt, "state_dtype", None) not in (None, dtype):  # state stored rounded: the step's own path
        return False
    base = O.Optimizer
    return (
        _unwrapped(cls.step) in (_unwrapped(base.step), _unwrapped(O.Nesterov.step))
        and cls._update is base._update
        and cls._update_no_grad is base._update_no_grad
        and cls._apply is base._apply and cls._rule_step is base._rule_step
        and cls._point in (base._point, O.Nesterov._point)
    )


class _Group:
    """Rows ``a:b`` of ``X`` moved by one optimizer (``solo``: one row with its own tensor).

    ``direct``: the optimizer's rule is called here, functionally: ``p`` and ``states`` are
    replaced by the rule's results every step (what ``Optimizer._apply`` computes and copies
    into the parameter and its state). Otherwise the optimizer's own ``step()`` moves ``x``.
    """

    def __init__(self, obj: Objective, rows: list[Row], a: int, X: Tensor) -> None:
        first = rows[0]
        self.a, self.b = a, a + len(rows)
        self.obj = obj
        self.solo = not _elementwise(first.cls)
        self.newton = issubclass(first.cls, O.Newton)
        lr_given = "lr" in first.hyper
        if self.solo:
            self.x = X[a].clone().requires_grad_(True)
            params = [self.x]
            hyper = dict(first.hyper)
        else:
            self.x = X[a:self.b].clone().requires_grad_(True)  # the optimizer's own leaf; X holds a copy
            params = [self.x]
            shape = (len(rows),) + (1,) * (X.ndim - 1)
            hyper = {}
            for k, v in first.hyper.items():
                values = [r.hyper[k] for r in rows]
                if all(u == v for u in values[1:]) or not _is_number(v):
                    hyper[k] = v
                else:
                    hyper[k] = torch.tensor([float(u) for u in values], dtype=X.dtype).reshape(shape)
        self.opt = build(first.cls, params, hyper)
        # torch wraps every step() in a profiler scope and its global hooks, which costs about as much
        # as a whole SGD step on two numbers; the lab's own optimizers have no hooks, so call the step
        # the optimizer class defines.
        self.step_fn = functools.partial(_unwrapped(type(self.opt).step), self.opt)
        self.sched = None
        if first.schedule is not None:
            # lr given: the schedule is scaled to it (lr * s(t) / s.base_lr); otherwise lr = s(t) itself
            self.sched = Scheduler(self.opt, first.schedule, relative=lr_given)
        self.metric = self.sched is not None and self.sched.needs_metric
        self.lookahead = bool(self.opt.param_groups[0].get("lookahead", False))
        self.failed = False  # Newton: a non-finite value inside its own evaluations
        self.whole = False  # the only group: its gradient is G itself
        self.done = False  # every row has stopped: no more steps
        # Newton at a fixed point (an accepted step that left x unchanged): its step length, repeated
        self.parked: float | None = None
        # must not step past its row's stop: measure every step while it runs
        self.careful = self.newton or not issubclass(first.cls, O.Optimizer)
        self.direct = _direct_rule(self.opt, X.dtype, self.lookahead)
        if self.direct:
            self.group = self.opt.param_groups[0]
            self.p = self.x.detach().clone()
            init = self.opt._init_state(self.p, self.group)
            self.states = [init.get(k) for k in self.opt._rule(self.group)[1]]
            self.count = 0
        self.hyper_out = []
        for r in rows:
            out = dict(r.hyper)
            if not lr_given:
                out = {"lr": float(r.schedule(0)) if r.schedule is not None else _as_float(_lr_of(self.opt)), **out}
            self.hyper_out.append(out)

    def lr_now(self) -> Any:
        return _lr_of(self.opt)

    def step(self, X: Tensor, G: Tensor) -> float | None:
        """One step of this group's rows; returns Newton's step length (None for the others)."""
        if self.direct:
            self.count += 1
            g = G[self.a] if self.solo else G if self.whole else G[self.a:self.b]
            new = self.opt._rule_step(self.p, g, self.states, self.group, self.count)
            self.p = new[0]
            self.states = [o if n is None else n for n, o in zip(new[1:], self.states)]
            return None
        a, b = self.a, self.b
        if self.newton:
            if self.parked is not None:
                return self.parked
            try:
                self.step_fn(lambda: self.obj.loss(self.x))
            except O.NonFiniteGradientError:
                self.failed = True
                return float("nan")
            size = float(self.opt.last["step_size"])
            if size > 0 and self.sched is None and type(self.opt) is O.Newton and torch.equal(self.x.detach(), X[a]):
                self.parked = size  # a fixed point: every later step repeats this one
            return size
        if self.solo:
            if self.lookahead:
                self.step_fn(self._closure_one)
            else:
                self.x.grad = G[a]
                self.step_fn()
            return None
        if self.lookahead:
            def closure() -> Tensor:  # Nesterov(lookahead=True) evaluates the gradient where it asks
                Fz, Gz = self.obj.value_grad_many(self.x.detach())
                self.x.grad = Gz
                return Fz.sum()
            self.step_fn(closure)
        else:
            self.x.grad = G if self.whole else G[a:b]
            self.step_fn()
        return None

    def rows(self) -> Tensor:
        """This group's rows now, shaped ``(n, *shape)``."""
        x = self.p if self.direct else self.x.detach()
        return x.unsqueeze(0) if self.solo else x

    def _closure_one(self) -> Tensor:
        v, g = self.obj.value_grad(self.x.detach())
        self.x.grad = g
        return v


def _group_key(row: Row, index: int, dtype: torch.dtype) -> tuple:
    """Rows with equal keys share one optimizer (numbers may differ: they become per-row tensors)."""
    if not _elementwise(row.cls) or dtype != torch.float64:
        return ("solo", index)
    if row.schedule is not None and getattr(row.schedule, "_stateful", False):
        return ("solo", index)  # a plateau schedule follows its own row's loss
    opts = tuple(sorted((k, None if _is_number(v) else repr(v)) for k, v in row.hyper.items()))
    return (row.cls, opts, None if row.schedule is None else id(row.schedule))


def check_steps(steps: int, record_every: int) -> None:
    """ValueError when ``steps`` is above :data:`MAX_STEPS` or would record too many points."""
    if steps > MAX_STEPS:
        raise ValueError(
            f"steps must be at most {MAX_STEPS:,} (about 100 s of 2-D steps), got {steps:,}; "
            "a longer run is better split or tuned with a larger lr"
        )
    if steps // record_every + 1 > MAX_RECORDS:
        need = math.ceil(steps / (MAX_RECORDS - 1))
        raise ValueError(
            f"record_every={record_every} would record {steps // record_every + 1:,} points per run "
            f"(at most {MAX_RECORDS:,}); pass record_every >= {need}"
        )


def _closed_form(obj: Objective) -> bool:
    """Whether ``f`` and its gradient are a built-in landscape's closed forms (no autograd inside);
    wrappers that declare ``__wrapped__`` (the web app's checkpoints) are looked through."""
    land = obj.landscape
    if land is None or land.grad_fn is None:
        return False
    fns = [land.f, land.grad_fn] + ([land.value_grad_fn] if land.value_grad_fn is not None else [])
    return all(getattr(inspect.unwrap(fn), "__module__", None) == _BUILTIN for fn in fns)


def _block(N: int, D: int) -> int:
    """Steps per block: :data:`BLOCK`, or a smaller divisor of :data:`CHUNK` for very large rows."""
    per_step = 2 * N * D * 8 + N * 8
    for k in (250, 125, 50, 25, 10, 5, 2, 1):
        if k <= BLOCK and CHUNK % k == 0 and k * per_step <= BLOCK_BYTES:
            return k
    return 1


@torch.no_grad()  # the optimizers and Newton's closure turn gradients on where they need them
def run_rows(
    obj: Objective,
    rows: list[Row],
    *,
    steps: int,
    tol: float | None,
    record_every: int = 1,
    bound: float | None = None,
    cancel: Callable[[], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
    stats: Stats | None = None,
    halt: bool = True,
) -> list[Run]:
    """Run every row of ``rows`` for at most ``steps`` steps in lockstep; one :class:`Run` per row.

    All starts must have one shape and dtype. See the module docstring for
    the stopping rule, blocks, chunks and caps.
    """
    check_steps(steps, record_every)
    t_start = time.perf_counter()
    shape, dtype = rows[0].x0.shape, rows[0].x0.dtype
    keys = [_group_key(r, i, dtype) for i, r in enumerate(rows)]
    order: list[int] = []
    members: dict[tuple, list[int]] = {}
    for i, k in enumerate(keys):
        members.setdefault(k, []).append(i)
    for idx in members.values():
        order += idx
    N, D = len(rows), int(np.prod(shape, dtype=np.int64))
    X = torch.stack([rows[i].x0 for i in order]).to(dtype)
    # each row's own bound by default (as it would have alone), so a far start widens only its own
    limit: Any = float(bound) if bound is not None else \
        torch.tensor([obj.bound_for(rows[i].x0) for i in order], dtype=torch.float64)
    groups: list[_Group] = []
    a = 0
    for idx in members.values():
        groups.append(_Group(obj, [rows[i] for i in idx], a, X))
        a += len(idx)
    for g in groups:
        g.whole = len(groups) == 1
    f_star = obj.f_star
    f64 = torch.float64
    timed = stats is not None
    step_time = 0.0
    block = _block(N, D)

    active = torch.ones(N, dtype=torch.bool)
    stop_step = torch.full((N,), steps, dtype=torch.int64)
    conv_flag = torch.zeros(N, dtype=torch.bool)
    div_flag = torch.zeros(N, dtype=torch.bool)
    final_x = torch.zeros(N, D, dtype=dtype)
    final_f = torch.zeros(N, dtype=f64)
    final_g = torch.zeros(N, dtype=f64)
    rec_t: list[int] = []
    rec_x: list[Tensor] = []
    rec_f: list[Tensor] = []
    rec_g: list[Tensor] = []
    lr_cols: dict[int, list[Any]] = {}  # group index -> per-step lr (scheduled groups and Newton)
    for gi, g in enumerate(groups):
        if g.sched is not None or g.newton:
            lr_cols[gi] = []
    newton = [g for g in groups if g.newton]
    scheduled = [g for g in groups if g.sched is not None]
    # the block not measured yet: X, f and the gradient of steps t0, t0 + 1, ..., t
    pend_x: list[Tensor] = []
    pend_f: list[Tensor] = []
    pend_g: list[Tensor] = []
    t0 = 0
    forced: list[tuple[int, int]] = []  # (step, row): Newton saw NaN/inf in its own evaluations
    last: list[Tensor] = []  # f64 values and gradient norms of the last step measured
    n_active = N

    def measure() -> None:
        """The stopping rule for every step of the pending block; stopped rows, records."""
        nonlocal n_active
        k = len(pend_x)
        Xs = torch.stack(pend_x).reshape(k, N, D)
        Fs = torch.stack(pend_f)
        fd = Fs if Fs.dtype == f64 else Fs.to(f64)
        if D <= 16:
            Gs = torch.stack(pend_g).reshape(k, N, D)
            gn = torch.sqrt((Gs * Gs).sum(-1))
        else:  # long rows: each step's norms exactly as the one-row loop sums them
            gn = torch.sqrt(torch.stack([(G * G).reshape(N, -1).sum(-1) for G in pend_g]))
        gn = gn if gn.dtype == f64 else gn.to(f64)
        ok = torch.isfinite(fd) & torch.isfinite(gn) & (Xs.abs().amax(-1) <= limit)
        for s, r in forced:
            ok[s - t0, r] = False
        if not halt:
            go = torch.ones_like(ok)
        elif tol is None:
            go = ok
        else:
            crit = (fd - f_star) if f_star is not None else gn
            go = ok & (crit >= tol)  # (crit is finite where ok: crit >= tol is not converged)
        stop = ~go & active
        hit = stop.any(0)
        if bool(hit.any()):
            r = hit.nonzero().squeeze(1)
            s = stop.to(torch.uint8).argmax(0)[r]  # each stopped row's first stop in the block
            stop_step[r] = s + t0
            conv_flag[r] = ok[s, r]
            div_flag[r] = ~ok[s, r]
            final_x[r] = Xs[s, r]
            final_f[r] = fd[s, r]
            final_g[r] = gn[s, r]
            active[r] = False
            left = active.tolist()
            n_active = sum(left)
            for g in groups:
                if not g.done and not any(left[g.a:g.b]):
                    g.done = True
        e = record_every
        first = t0 if t0 % e == 0 else t0 + e - t0 % e
        sel = list(range(first - t0, k, e))
        if t0 + k - 1 == steps and (not sel or sel[-1] != k - 1):
            sel.append(k - 1)
        if sel:
            if len(sel) == k:
                rec_x.append(Xs), rec_f.append(fd), rec_g.append(gn)
            else:
                idx = torch.tensor(sel)
                rec_x.append(Xs[idx]), rec_f.append(fd[idx]), rec_g.append(gn[idx])
            rec_t.extend(t0 + i for i in sel)
        last[:] = [Xs[-1], fd[-1], gn[-1]]

    def _loop(X: Tensor, F: Tensor, G: Tensor) -> int:
        """Steps, blocks and chunks until every row stopped or the budget is spent; the last step."""
        nonlocal t0, step_time
        t = 0
        pend_x.append(X), pend_f.append(F), pend_g.append(G)
        careful = any(g.careful for g in groups)
        while True:
            if careful or t % block == 0 or t == steps:
                measure()
                pend_x.clear(), pend_f.clear(), pend_g.clear(), forced.clear()
                t0 = t + 1
                careful = any(g.careful and not g.done and g.parked is None for g in groups)
                if n_active == 0 or t == steps:
                    break
                if t % CHUNK == 0 and t:
                    if cancel is not None and cancel():
                        raise Cancelled(f"cancelled after {t} of {steps} steps")
                    if progress is not None:
                        progress(t, steps)
            t += 1
            if timed:
                ts = time.perf_counter()
            for gi, g in enumerate(groups):
                if g.done:
                    if gi in lr_cols:
                        lr_cols[gi].append(float("nan"))
                    continue
                if g.sched is not None and not g.newton:
                    lr = g.lr_now()
                    lr_cols[gi].append(lr.reshape(-1).clone() if isinstance(lr, Tensor) else lr)
                out = g.step(X, G)
                if g.newton:
                    lr_cols[gi].append(out)
            if timed:
                step_time += time.perf_counter() - ts
            X = groups[0].rows() if len(groups) == 1 and groups[0].direct else (
                groups[0].rows().clone() if len(groups) == 1 else torch.cat([g.rows() for g in groups]))
            F, G = obj.value_grad_many(X)
            pend_x.append(X), pend_f.append(F), pend_g.append(G)
            for g in newton:
                if g.failed:  # Newton's own evaluation saw NaN/inf: diverged at this step, x unchanged
                    g.failed = False  # (f and the gradient at the unchanged x are the ones of this step)
                    forced.append((t, g.a))
            for g in scheduled:
                if g.metric:
                    fv = float(F[g.a])
                    g.sched.step(fv if math.isfinite(fv) else None)
                else:
                    g.sched.step()
        return t

    # Every group's rule called here and a built-in landscape's closed forms: nothing in the loop
    # needs autograd, so it runs in inference mode (the same kernels and numbers, less bookkeeping
    # per operation). Anything else may use autograd, which inference mode would silently turn off.
    quick = all(g.direct for g in groups) and _closed_form(obj)
    with torch.inference_mode(quick):
        t = _loop(X, *obj.value_grad_many(X))
    t = int(stop_step.max()) if n_active == 0 else t
    if progress is not None:
        progress(t, steps)
    if n_active:
        Xl, fl, gl = last
        final_x[active] = Xl[active]
        final_f[active] = fl[active]
        final_g[active] = gl[active]

    # ---------------------------------------------------------------- per-row results
    wall = time.perf_counter() - t_start
    if stats is not None:
        stats.wall_time, stats.step_time, stats.steps, stats.groups = wall, step_time, t, len(groups)
    rec_steps = np.asarray(rec_t, dtype=np.int64)
    paths = torch.cat(rec_x).numpy()
    losses = torch.cat(rec_f).numpy()
    gnorms = torch.cat(rec_g).numpy()
    stops = stop_step.numpy()
    conv_np, div_np = conv_flag.numpy(), div_flag.numpy()
    fx, ff, fg = final_x.numpy(), final_f.numpy(), final_g.numpy()
    lrs_of: dict[int, np.ndarray] = {}
    for gi, g in enumerate(groups):
        n = g.b - g.a
        if gi in lr_cols:
            vals = lr_cols[gi]
            arr = np.empty((len(vals), n))
            for s, v in enumerate(vals):
                arr[s] = v.numpy() if isinstance(v, Tensor) else v
        else:
            lr = g.lr_now()
            row_lr = lr.reshape(-1).to(f64).numpy() if isinstance(lr, Tensor) else np.full(n, float(lr))
            arr = np.broadcast_to(row_lr, (t, n))
        for j in range(n):
            lrs_of[g.a + j] = arr[:, j]
    out: list[Run | None] = [None] * N
    per_row = wall / N
    for pos, i in enumerate(order):
        g = next(g for g in groups if g.a <= pos < g.b)
        stop = int(stops[pos])
        keep = rec_steps < stop
        converged = bool(conv_np[pos])
        out[i] = Run(
            optimizer=rows[i].display,
            hyper=g.hyper_out[pos - g.a],
            path=np.concatenate([paths[keep, pos], fx[pos][None]]).reshape((-1, D)),
            losses=np.append(losses[keep, pos], ff[pos]),
            grad_norms=np.append(gnorms[keep, pos], fg[pos]),
            lrs=np.ascontiguousarray(lrs_of[pos][:stop], dtype=np.float64),
            record_steps=np.append(rec_steps[keep], stop),
            steps_to_tol=stop if converged else None,
            converged=converged,
            diverged=bool(div_np[pos]),
            wall_time=per_row,
            f_star=f_star,
            landscape=obj.name,
            tol=tol,
        )
    return out  # type: ignore[return-value]
