"""One table of optimizer test cases, in the manner of torch's ``optim_db``.

Each :class:`Case` names a descend optimizer with its options and, where one
exists, the torch.optim twin that must compute the same trajectory. The
parity tests (against torch), the engine tests (eager = foreach = fused) and
the state tests (round trips, non-finite policy) all draw from this table:

* ``TORCH``: cases with a torch twin (parity);
* ``ENGINE``: cases whose options cover every rule and state layout on the
  fast paths (each compiles once on the fused path, so the list is chosen,
  not exhaustive);
* ``STATE``: one or two cases per class for state and policy tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import torch

import descend.optim as O


@dataclass(frozen=True)
class Case:
    name: str
    cls: type
    kw: dict[str, Any]
    torch: tuple[type, dict[str, Any]] | None = None
    tags: tuple[str, ...] = field(default=())

    def make(self, params: Any, **extra: Any) -> Any:
        return self.cls(params, **{**self.kw, **extra})


T = torch.optim
CASES = [
    Case("sgd", O.SGD, {"lr": 0.05}, (T.SGD, {"lr": 0.05})),
    Case("sgd_wd", O.SGD, {"lr": 0.05, "weight_decay": 0.01}, (T.SGD, {"lr": 0.05, "weight_decay": 0.01}),
         tags=("engine",)),
    Case("sgd_as_torch", O.SGD, {"lr": 0.05, "momentum": 0.9, "dampening": 0.2, "weight_decay": 0.01},
         (T.SGD, {"lr": 0.05, "momentum": 0.9, "dampening": 0.2, "weight_decay": 0.01})),
    Case("sgd_momentum_maximize", O.SGD, {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "maximize": True},
         (T.SGD, {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "maximize": True}), tags=("engine",)),
    Case("sgd_nesterov", O.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True},
         (T.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True}), tags=("engine", "state")),
    Case("momentum_torch_form", O.Momentum,
         {"lr": 0.05, "beta": 0.9, "dampening": 0.2, "lr_inside": False, "first_step": "grad",
          "weight_decay": 0.01},
         (T.SGD, {"lr": 0.05, "momentum": 0.9, "dampening": 0.2, "weight_decay": 0.01})),
    Case("heavy_ball_l1", O.Momentum, {"lr": 0.02, "l1": 1e-3}, tags=("engine", "state")),
    Case("momentum_ema", O.Momentum, {"lr": 0.05, "style": "ema", "first_step": "grad"},
         tags=("engine", "state")),
    Case("nesterov_torch_form", O.Nesterov, {"lr": 0.05, "beta": 0.9, "lr_inside": False, "weight_decay": 0.01},
         (T.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01})),
    Case("nesterov_ema", O.Nesterov, {"lr": 0.05, "style": "ema"}, tags=("engine",)),
    Case("nesterov", O.Nesterov, {"lr": 0.02}, tags=("state",)),
    Case("adagrad_torch_form", O.Adagrad,
         {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "eps": 1e-10,
          "eps_mode": "outside", "weight_decay": 0.01},
         (T.Adagrad, {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "weight_decay": 0.01}),
         tags=("engine",)),
    Case("adagrad", O.Adagrad, {"lr": 0.1}, tags=("engine", "state")),
    Case("rmsprop_torch_form", O.RMSprop, {"lr": 0.01, "beta": 0.99, "eps_mode": "outside"},
         (T.RMSprop, {"lr": 0.01})),
    Case("rmsprop", O.RMSprop, {"lr": 0.01}, tags=("engine",)),
    Case("rmsprop_centered_momentum", O.RMSprop,
         {"lr": 0.01, "beta": 0.9, "eps_mode": "outside", "centered": True, "momentum": 0.7,
          "weight_decay": 0.01, "maximize": True},
         (T.RMSprop, {"lr": 0.01, "alpha": 0.9, "centered": True, "momentum": 0.7,
                      "weight_decay": 0.01, "maximize": True}), tags=("engine", "state")),
    Case("adam", O.Adam, {"lr": 0.01}, (T.Adam, {"lr": 0.01}), tags=("engine",)),
    Case("adam_amsgrad_wd", O.Adam, {"lr": 0.01, "beta1": 0.8, "beta2": 0.99, "amsgrad": True, "weight_decay": 0.05},
         (T.Adam, {"lr": 0.01, "betas": (0.8, 0.99), "amsgrad": True, "weight_decay": 0.05}),
         tags=("engine", "state")),
    Case("adam_maximize", O.Adam, {"lr": 0.01, "maximize": True}, (T.Adam, {"lr": 0.01, "maximize": True})),
    Case("adam_inside", O.Adam, {"lr": 0.01, "amsgrad": True, "eps_mode": "inside"}, tags=("engine",)),
    Case("adam_hat", O.Adam, {"lr": 0.01, "eps_mode": "hat"}, tags=("engine",)),
    Case("adam_no_bias_correction", O.Adam, {"lr": 0.001, "bias_correction": False}, tags=("engine",)),
    Case("adamw", O.AdamW, {"lr": 0.01, "weight_decay": 0.1}, (T.AdamW, {"lr": 0.01, "weight_decay": 0.1}),
         tags=("engine", "state")),
    Case("adamw_amsgrad", O.AdamW, {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True},
         (T.AdamW, {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True})),
]
BY_NAME = {c.name: c for c in CASES}
TORCH = [c for c in CASES if c.torch is not None]
ENGINE = [c for c in CASES if "engine" in c.tags]
STATE = [c for c in CASES if "state" in c.tags]


def ids(cases: list[Case]) -> list[str]:
    return [c.name for c in cases]


def stepped(cls, **kw):
    """The state dict of ``cls`` (torch's or descend's) after two steps of a ones gradient on one 4x3 float64 matrix."""
    ps = [torch.randn(4, 3, dtype=torch.float64, requires_grad=True)]
    opt = cls(ps, **kw)
    for _ in range(2):
        ps[0].grad = torch.ones_like(ps[0])
        opt.step()
    return opt.state_dict()


def child(code: str, **env: str) -> list[str]:
    """The words ``code`` prints in a fresh Python with ``env`` added to the environment (it must exit 0)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    return done.stdout.split()
