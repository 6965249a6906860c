r"""Phases: switching optimizers during training, by plan or by the SWATS criterion.

**The hand-off** (``TrainConfig.phases``, e.g. Adam for 10 epochs, then SGD).
A phase ends after its last optimizer step; at that moment, before the next
step:

* **what carries over**: the parameters (and the model's buffers, such as
  BatchNorm running statistics), the iteration and epoch counters, the data
  order (the next batch is the one the run would have taken anyway) and the
  RNG states;
* **what does not**: the optimizer state. The next phase's optimizer is built
  fresh on the same parameters, so Adam's moments do not leak into SGD's
  momentum (different rules, different meanings); its Scheduler is built
  fresh too, with its step counted from 0 at the start of the phase;
* **the lr the next phase starts at**: its own spec: ``Phase.lr``, else
  ``TrainConfig.lr``, else the ``base_lr`` of its schedule when that is a
  schedule object, else its optimizer's default lr (a callable or per-part
  spec keeps the lrs it was built with); its schedule, if any, starts at step
  0 and is applied relative to that lr. With ``carry_lr=True`` it starts instead at the lr that the previous
  phase's last step used (group by group when the group counts agree, else
  the first group's lr for all), and its schedule is scaled to start there;
* a phase boundary given in epochs falls on an epoch end: that epoch's
  evaluation and per-epoch schedule step belong to the finishing phase.

A ``{"type": "phase", ...}`` line in ``metrics.jsonl`` records each switch
(iteration, optimizer, starting lr, reason).

**SWATS** (Keskar & Socher 2017, "Improving generalization performance by
switching from Adam to SGD"; ``TrainConfig(swats=True)``). Training starts
with Adam (or AdamW). After each Adam step ``k`` with step ``p_k`` (the change
of all trainable parameters) and gradient ``g_k``, when ``p_k . g_k != 0``::

    gamma_k  = (p_k . p_k) / (-p_k . g_k)               SGD lr that would take the same step
    lambda_k = beta2 * lambda_{k-1} + (1 - beta2) * gamma_k
    switch when k > 1 and |lambda_k / (1 - beta2^k) - gamma_k| < eps   (and the estimate > 0)

using Adam's ``beta1``/``beta2`` of the first param group and ``eps =
TrainConfig.swats_eps`` (1e-9, the paper's). The estimate is taken over all
trainable parameters together. At the switch, training continues for the rest
of the budget with SGD with momentum as in the paper's Algorithm 1,
``v = beta1 v + g; p -= (1 - beta1) Lambda v``, which is
``descend.optim.Momentum(lr=Lambda, beta=beta1, style="ema")`` with
``Lambda = lambda_k / (1 - beta2^k)`` and a constant lr.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .. import optim
from ..schedules import Schedule, Scheduler
from .config import Phase, TrainConfig, check_options_reach, lr_of, make_optimizer, make_schedule

# With no budget given: 10 epochs, or more epochs on a small data set, so that a run
# takes at least this many optimizer steps (wine in batches of 64 has 2 per epoch).
DEFAULT_EPOCHS = 10
DEFAULT_MIN_ITERATIONS = 500


def plan(cfg: TrainConfig, ipe: int) -> list[dict[str, Any]]:
    """The phases as ``{"spec", "start", "end"}`` in iterations; ``ipe`` is 0 for a stream.

    The budget is ``iterations``, else ``epochs``, else the phases' durations, else
    ``max(10 epochs, 500 iterations)`` rounded up to whole epochs.
    """
    unit = "iteration" if (cfg.iterations or not ipe) else "epoch"
    specs = list(cfg.phases) if cfg.phases else [
        Phase(None, cfg.optimizer, cfg.schedule, cfg.lr, unit=unit, options=cfg.optimizer_options)
    ]
    check_options_reach(specs, cfg)

    def iters(n: int, u: str) -> int:
        if u == "epoch" and not ipe:
            raise ValueError("a stream has no epochs: give phase durations and the budget in iterations")
        return n * ipe if u == "epoch" else n

    if cfg.iterations is not None:
        total = cfg.iterations
    elif cfg.epochs is not None:
        total = iters(cfg.epochs, "epoch")
    elif all(s.duration is not None for s in specs):
        total = sum(iters(s.duration, s.unit) for s in specs)
    elif not ipe:
        raise ValueError("training from a stream needs an iteration budget: iterations=N (--iterations)")
    else:
        total = iters(default_epochs(ipe), "epoch")
    out, start = [], 0
    for i, s in enumerate(specs):
        length = total - start if s.duration is None else iters(s.duration, s.unit)
        if length < 1:
            raise ValueError(f"phase {i + 1} has no iterations left in a budget of {total}")
        out.append({"spec": s, "start": start, "end": start + length})
        start += length
    if start != total:

        def show(n: int) -> str:
            return f"{n / ipe:g} epochs ({n} iterations)" if ipe else f"{n} iterations"

        raise ValueError(
            f"the phases add up to {show(start)} but the budget is {show(total)}; make the phase "
            f"durations add up to the budget"
        )
    return out


def default_epochs(ipe: int) -> int:
    """Epochs when no budget is given: 10, or enough for 500 iterations."""
    return max(DEFAULT_EPOCHS, math.ceil(DEFAULT_MIN_ITERATIONS / ipe))


def build(cfg: TrainConfig, phase: dict[str, Any], module: nn.Module, ipe: int,
          carry: list[float] | None) -> tuple[Any, Scheduler | None]:
    """The optimizer and Scheduler of ``phase`` (see the module docstring for the lr it starts at)."""
    spec: Phase = phase["spec"]
    lr = spec.lr if spec.lr is not None else cfg.lr
    if lr is None and isinstance(spec.schedule, Schedule):
        lr = spec.schedule.base_lr
    options = dict(spec.options)
    for name in ("weight_decay", "l1"):
        if getattr(cfg, name):
            options.setdefault(name, getattr(cfg, name))
    opt = make_optimizer(spec.optimizer, module, lr, options)
    lr = lr_of(opt) if lr is None else lr
    if carry is not None:
        groups = opt.param_groups
        lrs = carry if len(carry) == len(groups) else [carry[0]] * len(groups)
        for g, v in zip(groups, lrs):
            g["lr"] = v
        lr = lrs[0]
    length = phase["end"] - phase["start"]
    if cfg.schedule_unit == "epoch":
        length = max(1, math.ceil(length / max(ipe, 1)))
    schedule = make_schedule(spec.schedule, length, lr, cfg.warmup)
    return opt, (Scheduler(opt, schedule, unit=cfg.schedule_unit) if schedule is not None else None)


def swats_phase(start: int, end: int, lr: float) -> dict[str, Any]:
    """The phase SWATS switches to: momentum SGD at the projected lr until the end."""
    return {"spec": Phase(None, "momentum", lr=lr, unit="iteration"), "start": start, "end": end}


class Swats:
    """The SWATS switch criterion, observed around each Adam step."""

    def __init__(self, optimizer: Any, eps: float) -> None:
        group = optimizer.param_groups[0]
        if not isinstance(optimizer, optim.Adam) and not isinstance(optimizer, torch.optim.Adam | torch.optim.AdamW):
            raise ValueError(
                f"swats starts from Adam or AdamW, got {type(optimizer).__name__}; use optimizer='adam'"
            )
        if "betas" in group:  # torch.optim.Adam
            self.beta1, self.beta2 = (float(b) for b in group["betas"])
        else:
            self.beta1, self.beta2 = float(group["beta1"]), float(group["beta2"])
        self.eps = float(eps)
        self.params = [p for g in optimizer.param_groups for p in g["params"] if p.requires_grad]
        self.k = 0
        self.lam = 0.0
        self.gamma: float | None = None
        self.switch_lr: float | None = None
        self._before: list[torch.Tensor] = []

    def before_step(self) -> None:
        """Remember the parameters the step starts from."""
        if not self._before:
            self._before = [p.detach().clone() for p in self.params]
        else:
            torch._foreach_copy_(self._before, [p.detach() for p in self.params])

    def after_step(self) -> bool:
        """Update the estimate from the step just taken; True when it is time to switch."""
        ps = [p for p in self.params if p.grad is not None]
        if not ps:
            return False
        idx = {id(p): i for i, p in enumerate(self.params)}
        step = torch._foreach_sub([p.detach() for p in ps], [self._before[idx[id(p)]] for p in ps])
        pg = sum(float((s.double() * p.grad.double()).sum()) for s, p in zip(step, ps))
        pp = sum(float((s.double() ** 2).sum()) for s in step)
        self.k += 1
        if pg == 0.0:
            return False
        gamma = pp / -pg
        self.gamma = gamma
        self.lam = self.beta2 * self.lam + (1.0 - self.beta2) * gamma
        estimate = self.lam / (1.0 - self.beta2**self.k)
        if self.k > 1 and estimate > 0 and abs(estimate - gamma) < self.eps:
            self.switch_lr = estimate
            return True
        return False

    def sgd(self, model_params: list[tuple[str, torch.Tensor]]) -> optim.Momentum:
        """The optimizer SWATS switches to."""
        assert self.switch_lr is not None
        return optim.Momentum(model_params, lr=self.switch_lr, beta=self.beta1, style="ema")

    def state_dict(self) -> dict[str, Any]:
        return {"k": self.k, "lam": self.lam, "gamma": self.gamma, "switch_lr": self.switch_lr,
                "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.k, self.lam, self.gamma = int(state["k"]), float(state["lam"]), state["gamma"]
        self.switch_lr = state["switch_lr"]
