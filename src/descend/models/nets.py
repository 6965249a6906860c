"""Small reference models: linear, logistic and softmax regression, an MLP and a CNN for 8x8 digits.

Every constructor draws its initial weights from torch's global generator, so
``torch.manual_seed(s)`` before the call makes the model reproducible; nothing
here seeds or keeps global state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

Tensor = torch.Tensor

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
}


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def n_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of scalar parameters (only those with ``requires_grad`` by default)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def linear_regression(n_features: int, n_outputs: int = 1) -> nn.Linear:
    """``y_hat = x W^T + b``: ``nn.Linear(n_features, n_outputs)``, ``(n_features + 1) n_outputs`` parameters.

    Train with :func:`descend.models.losses.mse`; the exact optimum is
    :func:`descend.data.least_squares`.
    """
    return nn.Linear(_positive_int("n_features", n_features), _positive_int("n_outputs", n_outputs))


def logistic_regression(n_features: int) -> nn.Linear:
    """One logit ``z = x . w + b`` with ``P(y = 1 | x) = sigmoid(z)``: ``nn.Linear(n_features, 1)``.

    Train with :func:`descend.models.losses.binary_cross_entropy` (from logits).
    """
    return nn.Linear(_positive_int("n_features", n_features), 1)


def softmax_regression(n_features: int, n_classes: int) -> nn.Linear:
    """``n_classes`` logits ``z = x W^T + b`` with ``P(y = k | x) = softmax(z)_k``.

    Train with :func:`descend.models.losses.cross_entropy` (from logits).
    """
    n_classes = _positive_int("n_classes", n_classes)
    if n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
    return nn.Linear(_positive_int("n_features", n_features), n_classes)


class MLP(nn.Module):
    """A multilayer perceptron ``n_in -> hidden[0] -> ... -> hidden[-1] -> n_out``.

    Each hidden layer is ``Linear -> [BatchNorm1d] -> activation -> [Dropout]``;
    the output layer is a plain ``Linear`` (logits or regression outputs). With
    ``batchnorm=True`` the hidden ``Linear`` layers have no bias (BatchNorm's
    shift replaces it). Inputs with more than two dimensions are flattened
    (``(N, 1, 8, 8)`` digits become ``(N, 64)``).

    Args:
        n_in: input features.
        hidden: widths of the hidden layers (an int for one layer; ``()`` gives a linear model).
        n_out: outputs (keyword-only).
        activation: ``"relu"``, ``"tanh"``, ``"sigmoid"`` or ``"gelu"``.
        batchnorm: insert ``BatchNorm1d`` after every hidden ``Linear``.
        dropout: drop probability in ``[0, 1)`` after every hidden activation.
    """

    def __init__(
        self,
        n_in: int,
        hidden: Sequence[int] | int = (64,),
        *,
        n_out: int,
        activation: str = "relu",
        batchnorm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        n_in = _positive_int("n_in", n_in)
        n_out = _positive_int("n_out", n_out)
        widths = (hidden,) if isinstance(hidden, int) else tuple(hidden)
        for w in widths:
            _positive_int("every hidden width", w)
        key = str(activation).lower()
        if key not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}"
            )
        dropout = float(dropout)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        layers: list[nn.Module] = []
        prev = n_in
        for w in widths:
            layers.append(nn.Linear(prev, w, bias=not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm1d(w))
            layers.append(ACTIVATIONS[key]())
            if dropout > 0.0:
                layers.append(nn.Dropout(dropout))
            prev = w
        layers.append(nn.Linear(prev, n_out))
        self.net = nn.Sequential(*layers)
        self.n_in, self.n_out, self.hidden = n_in, n_out, widths
        self.activation, self.batchnorm, self.dropout = key, bool(batchnorm), dropout

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim > 2:
            x = x.flatten(1)
        return self.net(x)


class SmallCNN(nn.Module):
    """A small CNN for 8x8 digit images (9,930 parameters for 10 classes).

    ::

        (N, 1, 8, 8) -> conv 3x3, 16, pad 1 -> ReLU -> conv 3x3, 32, pad 1 -> ReLU
                     -> max-pool 2x2 -> (N, 32, 4, 4) -> flatten 512 -> Linear -> n_classes

    Accepts ``(N, 64)`` rows (as from ``descend.data.load("digits")``),
    ``(N, 8, 8)`` or ``(N, 1, 8, 8)``. Parameters: ``160 + 4640 + 513 n_classes``.
    """

    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.n_classes = _positive_int("n_classes", n_classes)
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Linear(32 * 4 * 4, self.n_classes)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 2 and x.shape[1] == 64:
            x = x.reshape(-1, 1, 8, 8)
        elif x.ndim == 3 and tuple(x.shape[1:]) == (8, 8):
            x = x.unsqueeze(1)
        elif not (x.ndim == 4 and tuple(x.shape[1:]) == (1, 8, 8)):
            raise ValueError(
                f"SmallCNN expects inputs of shape (N, 64), (N, 8, 8) or (N, 1, 8, 8), "
                f"got {tuple(x.shape)}"
            )
        return self.head(self.features(x).flatten(1))


def _build_logistic(n_in: int, n_out: int) -> nn.Module:
    if n_out not in (1, 2):
        raise ValueError(
            f"logistic regression has one logit for 2 classes: n_out must be 1 or 2, got {n_out!r}; "
            "use 'softmax' for more classes"
        )
    return logistic_regression(n_in)


def _build_cnn(n_in: int, n_out: int) -> nn.Module:
    if n_in != 64:
        raise ValueError(f"the cnn is for 8x8 images: n_in must be 64, got {n_in!r}")
    return SmallCNN(n_out)


BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "linear": lambda n_in, n_out: linear_regression(n_in, n_out),
    "logistic": _build_logistic,
    "softmax": lambda n_in, n_out: softmax_regression(n_in, n_out),
    "mlp": lambda n_in, n_out, **kw: MLP(n_in, n_out=n_out, **kw),
    "cnn": _build_cnn,
}


def build(name: str, n_in: int, n_out: int, **kw: object) -> nn.Module:
    """The model ``name`` for ``n_in`` inputs and ``n_out`` outputs.

    ``linear`` (regression), ``logistic`` (one logit; ``n_out`` 1 or 2 classes),
    ``softmax`` (``n_out`` classes), ``mlp`` (keywords as :class:`MLP`: ``hidden``,
    ``activation``, ``batchnorm``, ``dropout``), ``cnn`` (:class:`SmallCNN`, ``n_in = 64``).
    """
    key = str(name).strip().lower()
    if key not in BUILDERS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(BUILDERS)}")
    if kw and key != "mlp":
        raise ValueError(f"model {key!r} takes no keyword options, got {sorted(kw)}")
    return BUILDERS[key](n_in, n_out, **kw)
