"""How torch.optim, Keras and optax optimizers map onto descend's arguments.

Each row says: this call in that library computes exactly what this descend
call computes. The table is data so that the documentation
(``docs/conventions.md``, made by :func:`markdown`) and the tests
(``tests/optim/test_conventions.py``, which run every row against the
library or against its documented update written out by hand) cannot drift
apart. The hyperparameter values are concrete so that a row is runnable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Row:
    library: str  # "torch", "keras" or "optax"
    theirs: str  # their optimizer, e.g. "torch.optim.SGD"
    their_kwargs: dict[str, Any]
    ours: str  # descend.optim class name
    our_kwargs: dict[str, Any]
    note: str = ""
    tags: tuple[str, ...] = field(default=())

    def their_call(self) -> str:
        return f"{self.theirs}({_kw(self.their_kwargs)})"

    def our_call(self) -> str:
        return f"{self.ours}({_kw(self.our_kwargs)})"


def _kw(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


ROWS: list[Row] = [
    # ---------------------------------------------------------------- torch
    Row("torch", "torch.optim.SGD", {"lr": 0.05}, "SGD", {"lr": 0.05}),
    Row("torch", "torch.optim.SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01},
        "SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}),
    Row("torch", "torch.optim.SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1},
        "Momentum", {"lr": 0.05, "beta": 0.9, "dampening": 0.1, "lr_inside": False, "first_step": "grad"},
        "torch's buffer starts at the first gradient and keeps lr outside"),
    Row("torch", "torch.optim.SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True},
        "Nesterov", {"lr": 0.05, "beta": 0.9, "lr_inside": False}),
    Row("torch", "torch.optim.Adagrad",
        {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "eps": 1e-10},
        "Adagrad", {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "eps": 1e-10,
                    "eps_mode": "outside"},
        "torch adds eps outside the square root"),
    Row("torch", "torch.optim.RMSprop", {"lr": 0.01},
        "RMSprop", {"lr": 0.01, "beta": 0.99, "eps": 1e-8, "eps_mode": "outside"},
        "torch's default alpha is 0.99 (the notes' beta 0.9) and eps sits outside"),
    Row("torch", "torch.optim.RMSprop", {"lr": 0.01, "alpha": 0.9, "centered": True, "momentum": 0.5},
        "RMSprop", {"lr": 0.01, "beta": 0.9, "eps_mode": "outside", "centered": True, "momentum": 0.5}),
    Row("torch", "torch.optim.Adam", {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8},
        "Adam", {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}),
    Row("torch", "torch.optim.Adam", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True},
        "Adam", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    Row("torch", "torch.optim.AdamW", {"lr": 0.01, "weight_decay": 0.1},
        "AdamW", {"lr": 0.01, "weight_decay": 0.1}),
    Row("torch", "torch.optim.AdamW", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True, "maximize": True},
        "AdamW", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True, "maximize": True}),
    # ---------------------------------------- torch's own keyword spellings (descend.optim.compat)
    Row("torch", "torch.optim.Adam", {"lr": 0.01, "betas": (0.8, 0.99)},
        "Adam", {"lr": 0.01, "betas": (0.8, 0.99)}, "torch's spelling: betas sets beta1, beta2"),
    Row("torch", "torch.optim.AdamW", {"lr": 0.01, "betas": (0.85, 0.995), "weight_decay": 0.1, "foreach": False},
        "AdamW", {"lr": 0.01, "betas": (0.85, 0.995), "weight_decay": 0.1, "foreach": False},
        "torch's spelling: foreach=False is impl='eager', fused=True is impl='fused'"),
    Row("torch", "torch.optim.RMSprop", {"lr": 0.01, "alpha": 0.9, "momentum": 0.5},
        "RMSprop", {"lr": 0.01, "alpha": 0.9, "momentum": 0.5, "eps_mode": "outside"},
        "torch's spelling: alpha is beta (the notes' default 0.9 stays when alpha is not given)"),
    Row("torch", "torch.optim.SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1},
        "Momentum", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "nesterov": False, "lr_inside": False,
                     "first_step": "grad"},
        "torch's spelling: momentum is beta"),
    Row("torch", "torch.optim.SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True},
        "Nesterov", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "lr_inside": False},
        "torch's spelling: nesterov=True is accepted (nesterov=False is Momentum)"),
    Row("torch", "torch.optim.Adagrad", {"lr": 0.1, "eps": 1e-10, "foreach": True, "differentiable": False},
        "Adagrad", {"lr": 0.1, "eps": 1e-10, "eps_mode": "outside", "foreach": True, "differentiable": False},
        "torch's spelling: capturable/differentiable=False accepted, True refused"),
    # ---------------------------------------------------------------- keras
    Row("keras", "keras.optimizers.SGD", {"learning_rate": 0.05, "momentum": 0.9},
        "Momentum", {"lr": 0.05, "beta": 0.9},
        "Keras: m = momentum*m - lr*g; p += m (the heavy ball of note 001)"),
    Row("keras", "keras.optimizers.SGD", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True},
        "Nesterov", {"lr": 0.05, "beta": 0.9}),
    Row("keras", "keras.optimizers.Adagrad", {"learning_rate": 0.1},
        "Adagrad", {"lr": 0.1, "eps": 1e-7, "initial_accumulator_value": 0.1},
        "Keras starts the accumulator at 0.1 and uses eps 1e-7 inside the root"),
    Row("keras", "keras.optimizers.RMSprop", {"learning_rate": 0.01},
        "RMSprop", {"lr": 0.01, "beta": 0.9, "eps": 1e-7}),
    Row("keras", "keras.optimizers.RMSprop", {"learning_rate": 0.01, "momentum": 0.5, "centered": True},
        "RMSprop", {"lr": 0.01, "beta": 0.9, "eps": 1e-7, "momentum": 0.5, "centered": True},
        "Keras keeps lr inside the momentum buffer: equal while lr is constant"),
    Row("keras", "keras.optimizers.Adam", {"learning_rate": 0.01},
        "Adam", {"lr": 0.01, "eps": 1e-7, "eps_mode": "hat"},
        "Keras adds eps to sqrt(v) before bias correction (the paper's eps-hat)"),
    Row("keras", "keras.optimizers.Adam", {"learning_rate": 0.01, "amsgrad": True},
        "Adam", {"lr": 0.01, "eps": 1e-7, "eps_mode": "hat", "amsgrad": True}),
    Row("keras", "keras.optimizers.AdamW", {"learning_rate": 0.01, "weight_decay": 0.004},
        "AdamW", {"lr": 0.01, "eps": 1e-7, "eps_mode": "hat", "weight_decay": 0.004}),
    # ---------------------------------------------------------------- optax
    Row("optax", "optax.sgd", {"learning_rate": 0.05}, "SGD", {"lr": 0.05}),
    Row("optax", "optax.sgd", {"learning_rate": 0.05, "momentum": 0.9},
        "Momentum", {"lr": 0.05, "beta": 0.9, "lr_inside": False},
        "optax's trace t = g + momentum*t, scaled by lr afterwards"),
    Row("optax", "optax.sgd", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True},
        "Nesterov", {"lr": 0.05, "beta": 0.9, "lr_inside": False}),
    Row("optax", "optax.adagrad", {"learning_rate": 0.1},
        "Adagrad", {"lr": 0.1, "eps": 1e-7, "initial_accumulator_value": 0.1}),
    Row("optax", "optax.rmsprop", {"learning_rate": 0.01},
        "RMSprop", {"lr": 0.01, "beta": 0.9, "eps": 1e-8}),
    Row("optax", "optax.rmsprop", {"learning_rate": 0.01, "centered": True, "momentum": 0.5},
        "RMSprop", {"lr": 0.01, "beta": 0.9, "eps": 1e-8, "centered": True, "momentum": 0.5}),
    Row("optax", "optax.adam", {"learning_rate": 0.01},
        "Adam", {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}),
    Row("optax", "optax.adamw", {"learning_rate": 0.01, "weight_decay": 1e-4},
        "AdamW", {"lr": 0.01, "weight_decay": 1e-4}),
]


def markdown() -> str:
    """The conventions table as Markdown (the body of ``docs/conventions.md``)."""
    lines = [
        "| library | their optimizer | descend.optim | note |",
        "| --- | --- | --- | --- |",
    ]
    for row in ROWS:
        lines.append(f"| {row.library} | `{row.their_call()}` | `{row.our_call()}` | {row.note} |")
    return "\n".join(lines) + "\n"


HEADER = """# Conventions: torch.optim, Keras and optax in descend's arguments

Frameworks disagree on details the seed notes fix: eps inside or outside the
square root, whether lr sits inside the momentum buffer, the momentum
buffer's first value, Adagrad's initial accumulator, RMSprop's default beta,
Keras' eps-hat in Adam, L2 versus decoupled weight decay. descend follows the
notes by default and exposes every other convention as a keyword. Each row
below computes exactly what the other library computes (tested row by row in
`tests/optim/test_conventions.py`; regenerate this file with
`python -m descend.optim.conventions`). Rows whose note says "torch's spelling"
call descend with torch.optim's own keywords (`betas`, `alpha`, `momentum`,
`nesterov`, `foreach`, ...), which every optimizer with a torch twin accepts
(`descend.optim.compat`); giving both spellings of one value is an error.

"""

def write_docs(root: Path) -> None:
    """Write ``docs/conventions.md`` and the table between the README's markers."""
    (root / "docs" / "conventions.md").write_text(HEADER + markdown())
    readme = root / "README.md"
    text = readme.read_text()
    start, end = "<!-- conventions:start -->", "<!-- conventions:end -->"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{markdown()}{end}{tail}")


if __name__ == "__main__":  # pragma: no cover
    write_docs(Path(__file__).resolve().parents[3])
    print("wrote docs/conventions.md and the README table")
