"""Every row of the conventions table (docs/conventions.md) holds.

torch rows run against torch.optim itself. Keras and optax are not installed
here, so their rows run against their documented update rules, written out
below in plain tensor code line by line from each library's source
(keras/src/optimizers/*.py, optax/_src/transform.py and alias.py).
"""

import math
from pathlib import Path

import pytest
import torch

import descend.optim as O
from descend.optim.conventions import ROWS, markdown


class Reference:
    """A minimal optimizer: state per tensor, ``update(p, g, st, t)`` in place."""

    def __init__(self, params, **kw):
        self.params, self.kw, self.t = params, kw, 0
        self.st = [{} for _ in params]

    def step(self):
        self.t += 1
        with torch.no_grad():
            for p, st in zip(self.params, self.st):
                self.update(p, p.grad, st, self.t)


class KerasSGD(Reference):
    def update(self, p, g, st, t):
        lr, mom = self.kw["learning_rate"], self.kw.get("momentum", 0.0)
        m = st.setdefault("m", torch.zeros_like(p))
        m.copy_(mom * m - lr * g)
        if self.kw.get("nesterov"):
            p.add_(mom * m - lr * g)
        else:
            p.add_(m)


class KerasAdagrad(Reference):
    def update(self, p, g, st, t):
        lr, eps = self.kw["learning_rate"], self.kw.get("epsilon", 1e-7)
        acc = st.setdefault("acc", torch.full_like(p, self.kw.get("initial_accumulator_value", 0.1)))
        acc.add_(g * g)
        p.sub_(lr * g / torch.sqrt(acc + eps))


class KerasRMSprop(Reference):
    def update(self, p, g, st, t):
        lr, rho = self.kw["learning_rate"], self.kw.get("rho", 0.9)
        eps, mom = self.kw.get("epsilon", 1e-7), self.kw.get("momentum", 0.0)
        vel = st.setdefault("vel", torch.zeros_like(p))
        vel.copy_(rho * vel + (1 - rho) * g * g)
        if self.kw.get("centered"):
            avg = st.setdefault("avg", torch.zeros_like(p))
            avg.copy_(rho * avg + (1 - rho) * g)
            denom = vel - avg * avg + eps
        else:
            denom = vel + eps
        inc = lr * g / torch.sqrt(denom)
        if mom > 0:
            m = st.setdefault("m", torch.zeros_like(p))
            m.copy_(mom * m + inc)
            p.sub_(m)
        else:
            p.sub_(inc)


class KerasAdam(Reference):
    def update(self, p, g, st, t):
        lr, b1, b2 = self.kw["learning_rate"], self.kw.get("beta_1", 0.9), self.kw.get("beta_2", 0.999)
        eps = self.kw.get("epsilon", 1e-7)
        wd = self.kw.get("weight_decay", 0.0)
        if wd:  # keras applies decoupled decay before the update
            p.sub_(p * wd * lr)
        m = st.setdefault("m", torch.zeros_like(p))
        v = st.setdefault("v", torch.zeros_like(p))
        alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        m.add_((g - m) * (1 - b1))
        v.add_((g * g - v) * (1 - b2))
        if self.kw.get("amsgrad"):
            vh = st.setdefault("vh", torch.zeros_like(p))
            vh.copy_(torch.maximum(vh, v))
            v = vh
        p.sub_(alpha * m / (torch.sqrt(v) + eps))


class OptaxSGD(Reference):
    def update(self, p, g, st, t):
        lr, mom = self.kw["learning_rate"], self.kw.get("momentum")
        if mom is None:
            p.sub_(lr * g)
            return
        tr = st.setdefault("trace", torch.zeros_like(p))
        tr.copy_(g + mom * tr)
        u = g + mom * tr if self.kw.get("nesterov") else tr
        p.sub_(lr * u)


class OptaxAdagrad(Reference):
    def update(self, p, g, st, t):
        lr, eps = self.kw["learning_rate"], self.kw.get("eps", 1e-7)
        s = st.setdefault("sum", torch.full_like(p, self.kw.get("initial_accumulator_value", 0.1)))
        s.add_(g * g)
        p.sub_(lr * torch.where(s > 0, g * torch.rsqrt(s + eps), 0.0))


class OptaxRMSprop(Reference):
    def update(self, p, g, st, t):
        lr, decay, eps = self.kw["learning_rate"], self.kw.get("decay", 0.9), self.kw.get("eps", 1e-8)
        nu = st.setdefault("nu", torch.zeros_like(p))
        nu.copy_((1 - decay) * g * g + decay * nu)
        if self.kw.get("centered"):
            mu = st.setdefault("mu", torch.zeros_like(p))
            mu.copy_((1 - decay) * g + decay * mu)
            u = g * torch.rsqrt(nu - mu * mu + eps)
        else:
            u = g * torch.rsqrt(nu + eps)
        mom = self.kw.get("momentum")
        if mom is not None:
            tr = st.setdefault("trace", torch.zeros_like(p))
            tr.copy_(u + mom * tr)
            u = tr
        p.sub_(lr * u)


class OptaxAdam(Reference):
    def update(self, p, g, st, t):
        lr, b1, b2 = self.kw["learning_rate"], self.kw.get("b1", 0.9), self.kw.get("b2", 0.999)
        eps, wd = self.kw.get("eps", 1e-8), self.kw.get("weight_decay", 0.0)
        mu = st.setdefault("mu", torch.zeros_like(p))
        nu = st.setdefault("nu", torch.zeros_like(p))
        mu.copy_((1 - b1) * g + b1 * mu)
        nu.copy_((1 - b2) * g * g + b2 * nu)
        u = (mu / (1 - b1**t)) / (torch.sqrt(nu / (1 - b2**t)) + eps)
        p.sub_(lr * (u + wd * p))


REFERENCES = {
    "keras.optimizers.SGD": KerasSGD,
    "keras.optimizers.Adagrad": KerasAdagrad,
    "keras.optimizers.RMSprop": KerasRMSprop,
    "keras.optimizers.Adam": KerasAdam,
    "keras.optimizers.AdamW": KerasAdam,
    "optax.sgd": OptaxSGD,
    "optax.adagrad": OptaxAdagrad,
    "optax.rmsprop": OptaxRMSprop,
    "optax.adam": OptaxAdam,
    "optax.adamw": OptaxAdam,
}


def their_optimizer(row, params):
    if row.library == "torch":
        return getattr(torch.optim, row.theirs.split(".")[-1])(params, **row.their_kwargs)
    return REFERENCES[row.theirs](params, **row.their_kwargs)


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.library}-{r.theirs.split('.')[-1]}-{i}" for i, r in enumerate(ROWS)])
def test_row(row):
    gen = torch.Generator().manual_seed(3)
    p0 = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    a, b = p0.clone().requires_grad_(), p0.clone().requires_grad_()
    theirs = their_optimizer(row, [a])
    ours = getattr(O, row.ours)([b], **row.our_kwargs)
    for _ in range(150):
        g = torch.randn(6, 4, generator=gen, dtype=torch.float64)
        a.grad, b.grad = g.clone(), g.clone()
        theirs.step()
        ours.step()
    assert (a - b).abs().max().item() <= 1e-12
    assert (a - p0).abs().max().item() > 1e-3  # the row really moved the parameters


def test_every_library_and_optimizer_is_covered():
    libs = {(r.library, r.ours) for r in ROWS}
    for lib in ("torch", "keras", "optax"):
        for name in ("SGD" if lib != "keras" else "Momentum", "Nesterov", "Adagrad", "RMSprop", "Adam", "AdamW"):
            assert (lib, name) in libs, (lib, name)


@pytest.mark.parametrize("doc", ["docs/conventions.md", "README.md"])
def test_docs_table_is_current(doc):
    text = (Path(__file__).parents[2] / doc).read_text()
    assert markdown() in text, "regenerate the tables: python -m descend.optim.conventions"
