"""Newton's method (note 000), with damping, Newton-CG and a backtracking line search."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch

from ._validate import NONNEG, POSITIVE, Range, optional
from .base import NonFiniteGradientError, Optimizer

HESSIAN_MODES = ("auto", "exact", "cg")


def _count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _opt_count(name: str, value: Any) -> None:
    if value is not None:
        _count(name, value)


def solve_newton(H: torch.Tensor, g: torch.Tensor, damping: float) -> tuple[torch.Tensor, float]:
    """Direction ``d = -(H + damping I)^-1 g`` and the shift actually used.

    When ``H + damping I`` is not positive definite (Newton's direction may
    then point uphill) a multiple of the identity is added until a Cholesky
    factorization succeeds (Nocedal & Wright, Algorithm 3.3).
    """
    n = H.shape[0]
    eye = torch.eye(n, dtype=H.dtype, device=H.device)
    A = H + damping * eye
    L, info = torch.linalg.cholesky_ex(A)
    tau = 0.0
    if int(info) != 0:
        diag = torch.diagonal(A)
        beta = 1e-3 * max(float(diag.abs().max()), 1.0)
        tau = max(0.0, beta - float(diag.min()))
        for _ in range(200):
            L, info = torch.linalg.cholesky_ex(A + tau * eye)
            if int(info) == 0:
                break
            tau = max(2.0 * tau, beta)
    d = -torch.cholesky_solve(g.unsqueeze(1), L).squeeze(1)
    return d, damping + tau


def conjugate_gradient(
    hvp: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, tol: float, max_iter: int
) -> tuple[torch.Tensor, int]:
    """Solve ``H x = b`` by conjugate gradients using only products ``H v``.

    Stops at relative residual ``tol`` or on negative curvature (Steihaug):
    then it returns the iterate so far, or ``b`` itself at the first iteration
    (steepest descent when ``b = -g``). Returns ``(x, iterations)``.
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = r @ r
    bnorm = math.sqrt(float(rs))
    if bnorm == 0.0:
        return x, 0
    for i in range(max_iter):
        Hp = hvp(p)
        curv = p @ Hp
        if float(curv) <= 0.0:
            return (x if i > 0 else b.clone()), i
        alpha = rs / curv
        x = x + alpha * p
        r = r - alpha * Hp
        rs_new = r @ r
        if math.sqrt(float(rs_new)) <= tol * bnorm:
            return x, i + 1
        p = r + (rs_new / rs) * p
        rs = rs_new
    return x, max_iter


class Newton(Optimizer):
    r"""Newton's method (note 000)::

        p = p - lr * (H + damping I)^-1 g

    where g and H are the gradient and Hessian of the loss at p. Pure Newton
    (lr 1, no damping) has no learning rate and solves a quadratic in one
    step; "with line search it has one" (note 000): ``line_search=True`` picks
    the step length t by Armijo backtracking, ``f(p + t d) <= f(p) + c1 t g.d``,
    starting from ``t = lr`` and multiplying by ``backtrack``.

    The Hessian is exact (built from second derivatives, ``n`` Hessian-vector
    products) for at most ``exact_max`` parameters, and otherwise never
    formed: Newton-CG solves ``H d = -g`` with conjugate gradients on
    Hessian-vector products (double backward). ``hessian="exact"`` or
    ``"cg"`` forces a choice. An indefinite Hessian gets a multiple of the
    identity added (modified Newton) so that the direction descends.

    ``step(closure)`` needs a closure that computes and **returns** the loss
    without calling ``backward()`` (Newton differentiates it twice itself).
    All parameters form one vector, so there is one param group, and
    hyperparameters are Python numbers. ``weight_decay`` adds
    ``weight_decay/2 * ||p||^2`` to the loss (gradient and Hessian).

    Not in torch.optim, Keras or optax (torch's closest is LBFGS, a
    quasi-Newton method).
    """

    _tensor_hypers = False
    _specs = {
        "lr": POSITIVE,
        "damping": NONNEG,
        "weight_decay": NONNEG,
        "maximize": bool,
        "line_search": bool,
        "hessian": HESSIAN_MODES,
        "exact_max": _count,
        "cg_tol": optional(POSITIVE),
        "cg_max_iter": _opt_count,
        "c1": Range(0.0, 1.0, lo_open=True, hi_open=True),
        "backtrack": Range(0.0, 1.0, lo_open=True, hi_open=True),
        "max_backtracks": _count,
    }

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        *,
        damping: float = 0.0,
        line_search: bool = False,
        hessian: str = "auto",
        exact_max: int = 1000,
        cg_tol: float | None = None,
        cg_max_iter: int | None = None,
        c1: float = 1e-4,
        backtrack: float = 0.5,
        max_backtracks: int = 60,
        weight_decay: float = 0.0,
        maximize: bool = False,
        nonfinite: str = "raise",
    ) -> None:
        defaults = dict(
            lr=lr, damping=damping, line_search=line_search, hessian=hessian, exact_max=exact_max,
            cg_tol=cg_tol, cg_max_iter=cg_max_iter, c1=c1, backtrack=backtrack,
            max_backtracks=max_backtracks, weight_decay=weight_decay, maximize=maximize,
        )
        super().__init__(params, defaults, nonfinite=nonfinite)
        self.last: dict[str, Any] = {}

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ()  # only the step count: Newton keeps no running averages

    _all_state_keys = _state_keys  # (under every option)

    def _fusable(self, group: dict[str, Any]) -> str | None:
        return "Newton solves a linear system, not an element-wise update"

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if self.param_groups:
            raise ValueError(
                "Newton optimizes all parameters as one vector and takes a single param group; "
                "put every tensor in one group"
            )
        super().add_param_group(param_group)

    # ---------------------------------------------------------------- pieces
    def _objective(self, closure: Callable[[], Any], group: dict[str, Any]) -> torch.Tensor:
        loss = closure()
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError(
                f"Newton's closure must return the loss as a scalar tensor, got {type(loss).__name__}"
            )
        loss = loss.reshape(())
        if group["maximize"]:
            loss = -loss
        wd = group["weight_decay"]
        if wd:
            loss = loss + 0.5 * wd * sum((p * p).sum() for p in group["params"])
        return loss

    @staticmethod
    def _flat(tensors: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return torch.cat([t.reshape(-1) for t in tensors])

    @staticmethod
    def _assign(params: list[torch.Tensor], flat: torch.Tensor) -> None:
        offset = 0
        for p in params:
            n = p.numel()
            p.copy_(flat[offset : offset + n].view_as(p))
            offset += n

    def _hessian(self, gflat: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
        n = gflat.numel()
        eye = torch.eye(n, dtype=gflat.dtype, device=gflat.device)
        if not gflat.requires_grad:  # the gradient does not depend on the parameters: H = 0
            return torch.zeros(n, n, dtype=gflat.dtype, device=gflat.device)
        try:
            rows = torch.autograd.grad(
                gflat, params, grad_outputs=eye, is_grads_batched=True, retain_graph=True,
                allow_unused=True,
            )
            cols = [
                torch.zeros(n, p.numel(), dtype=gflat.dtype, device=gflat.device) if r is None
                else r.reshape(n, -1)
                for r, p in zip(rows, params)
            ]
            H = torch.cat(cols, dim=1)
        except RuntimeError:  # an op without a batching rule: one row at a time
            H = torch.stack([
                self._flat(tuple(
                    torch.zeros_like(p) if r is None else r
                    for r, p in zip(
                        torch.autograd.grad(gflat[i], params, retain_graph=True, allow_unused=True), params
                    )
                ))
                for i in range(n)
            ])
        return 0.5 * (H + H.T)

    # ---------------------------------------------------------------- step
    def step(self, closure: Callable[[], Any] | None = None) -> torch.Tensor:  # type: ignore[override]
        """One Newton step; returns the loss at the starting point."""
        if closure is None:
            raise ValueError(
                "Newton needs a closure: step(closure), where closure() computes and returns the loss "
                "(without calling backward(); Newton takes first and second derivatives itself)"
            )
        group = self.param_groups[0]
        params = [p for p in group["params"] if p.requires_grad]
        if not params:
            raise ValueError("Newton has no parameter with requires_grad=True to optimize")
        with torch.enable_grad():
            loss = self._objective(closure, group)
            if not loss.requires_grad:
                raise ValueError(
                    "the loss returned by Newton's closure does not depend on the parameters "
                    "(was it computed under torch.no_grad()?)"
                )
            try:
                grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
            except RuntimeError as err:
                if "second time" in str(err):
                    raise ValueError(
                        "Newton's closure must not call backward(): return the loss and Newton "
                        "differentiates it twice itself"
                    ) from err
                raise
            grads = tuple(torch.zeros_like(p) if g is None else g for g, p in zip(grads, params))
            gflat = self._flat(grads)
            g0 = gflat.detach()
            state = self.state[params[0]]
            step_no = state.get("step", 0) + 1
            if self.nonfinite != "ignore" and not (
                bool(torch.isfinite(loss)) and bool(torch.isfinite(g0).all())
            ):
                if self.nonfinite == "skip":
                    return loss.detach()
                raise NonFiniteGradientError(
                    f"non-finite loss or gradient at Newton step {step_no}; no parameter was changed"
                )
            n = g0.numel()
            mode = group["hessian"]
            if mode == "auto":
                mode = "exact" if n <= group["exact_max"] else "cg"
            damping = group["damping"]
            if mode == "exact":
                H = self._hessian(gflat, params).detach()
                d, shift = solve_newton(H, g0, damping)
                cg_iters = 0
            else:
                def hvp(v: torch.Tensor) -> torch.Tensor:
                    hv = torch.autograd.grad(gflat, params, grad_outputs=v, retain_graph=True, allow_unused=True)
                    hv = tuple(torch.zeros_like(p) if h is None else h for h, p in zip(hv, params))
                    return self._flat(hv).detach() + damping * v

                gnorm = float(g0.norm())
                tol = group["cg_tol"] if group["cg_tol"] is not None else min(0.5, math.sqrt(gnorm))
                max_iter = group["cg_max_iter"] or min(n, 250)
                d, cg_iters = conjugate_gradient(hvp, -g0, tol, max_iter)
                shift = damping
        with torch.no_grad():
            x0 = self._flat(tuple(p.detach() for p in params)).clone()
            slope = float(g0 @ d)
            t = group["lr"]
            accepted = True
            if group["line_search"]:
                if slope >= 0:  # not a descent direction: fall back to steepest descent
                    d = -g0
                    slope = -float(g0 @ g0)
                f0 = float(loss)
                accepted = False
                for _ in range(group["max_backtracks"]):
                    self._assign(params, x0 + t * d)
                    f = float(self._objective(closure, group))
                    if math.isfinite(f) and f <= f0 + group["c1"] * t * slope:
                        accepted = True
                        break
                    t *= group["backtrack"]
                if not accepted:
                    self._assign(params, x0)
                    warnings.warn(
                        f"Newton line search found no step satisfying the Armijo condition at step "
                        f"{step_no}; parameters left unchanged",
                        RuntimeWarning,
                        stacklevel=2,
                    )
            else:
                self._assign(params, x0 + t * d)
        for p in params:
            self.state[p]["step"] = step_no
        self.last = {"step_size": t if accepted else 0.0, "mode": mode, "shift": shift,
                     "cg_iterations": cg_iters, "grad_norm": float(g0.norm())}
        return loss.detach()
