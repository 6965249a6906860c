"""torch.optim's names of optimizer state, as torch itself writes them.

* :func:`torch_state_keys`: every per-parameter state key some ``torch.optim`` optimizer
  writes, collected by stepping each of torch's own optimizers (with each of its
  state-adding options on) on a small problem. A torch-format state dict loaded into a
  descend twin (:func:`descend.optim.compat.from_torch`) is refused when it holds one of
  these that the twin does not write (it was saved by another optimizer); any other key
  was put there by a wrapper (timm's ``Lookahead`` keeps ``lookahead_slow_buff`` in the
  wrapped optimizer's state) and passes through unchanged, as torch.optim loads it.
* :class:`ParamState`: one parameter's state in ``opt.state`` (a ``dict``, keyed by the
  notes' names ``V``, ``S``, ``v``, ...). Reading it by torch's name
  (``opt.state[p]["exp_avg"]``) raises a ``KeyError`` that says which key descend keeps
  it under, how the two are scaled, and that ``state_dict(format="torch")`` gives torch's
  names. The read is never aliased: a torch name does not return descend's tensor, whose
  scale can differ (Momentum keeps lr x torch's ``momentum_buffer``).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, ClassVar

import torch

_SKIP = ("foreach", "fused", "capturable", "differentiable")  # implementation switches: no state of their own


@functools.cache
def torch_state_keys() -> frozenset[str]:
    """The per-parameter state keys written by torch.optim's optimizers (``step`` included)."""
    keys: set[str] = set()
    for name in dir(torch.optim):
        cls = getattr(torch.optim, name)
        if not isinstance(cls, type) or not issubclass(cls, torch.optim.Optimizer) or cls is torch.optim.Optimizer:
            continue
        for kwargs in _variants(cls):
            keys |= _stepped(cls, kwargs)
    return frozenset(keys)


def _variants(cls: type) -> list[dict[str, Any]]:
    """Keyword sets that together turn on each of ``cls``'s optional state tensors: the defaults,
    momentum on, and each flag that is off by default switched on (with momentum on)."""
    signature = inspect.signature(cls.__init__).parameters
    base = {"momentum": 0.9} if "momentum" in signature else {}
    flags = [k for k, p in signature.items() if p.default is False and k not in _SKIP]
    return [{}, base, *({**base, flag: True} for flag in flags)]


def _stepped(cls: type, kwargs: dict[str, Any]) -> set[str]:
    """The state keys ``cls(**kwargs)`` writes in two steps on a matrix and a vector (empty
    where torch refuses the options or the problem: SparseAdam wants sparse gradients)."""
    gen = torch.Generator().manual_seed(0)
    for shapes in (((3, 2), (2,)), ((3, 2),)):  # (Muon takes matrices only)
        ps = [torch.randn(s, generator=gen, dtype=torch.float64, requires_grad=True) for s in shapes]
        try:
            opt = cls(ps, **kwargs)
        except (ValueError, TypeError, RuntimeError):
            continue
        try:
            for _ in range(2):
                opt.step(functools.partial(_loss, opt, ps))
        except (ValueError, TypeError, RuntimeError):
            return set()
        return {k for st in opt.state.values() for k in st}
    return set()


def _loss(opt: Any, ps: list[torch.Tensor]) -> torch.Tensor:
    """The closure of :func:`_stepped` (LBFGS calls it): a sum of squares, differentiated."""
    opt.zero_grad()
    loss = torch.stack([(p * p).sum() for p in ps]).sum()
    loss.backward()
    return loss


# ---------------------------------------------------------------------- per-parameter state
class ParamState(dict):
    """One parameter's state in ``opt.state``: a plain ``dict`` of descend's keys, except that a
    missing key which is torch.optim's name of one of them raises a KeyError saying so.

    A subclass per torch twin (``AdamState``, ...) knows that twin's names; reads that hit cost
    what they cost in a dict (``__missing__`` runs only on a miss). Copies, pickles and
    ``state_dict()`` hold plain dicts' contents (``state_dict()`` saves plain dicts).
    """

    __slots__ = ()
    twin: ClassVar[str] = ""  # the descend class whose torch names this state explains ("": none)

    def __missing__(self, key: Any) -> Any:
        if isinstance(key, str) and key in torch_state_keys() and key != "step":
            raise KeyError(explain(self.twin, key, sorted(map(str, self))))
        raise KeyError(key)


def explain(name: str, key: str, held: list[str]) -> str:
    """The message for reading torch's state key ``key`` from a descend ``name``'s state."""
    from .compat import TWINS  # (compat imports this module)

    twin = TWINS.get(name)
    ours = [o for o, t in twin.state.items() if t == key] if twin else []
    where = f"descend.optim.{name}" if name else "this descend optimizer"
    if not ours:
        return (f"{key!r} is torch.optim's name of a state tensor that {where} does not keep; descend's state "
                f"uses the notes' names (this one holds {held}); opt.state_dict(format='torch') gives "
                f"a twin's state under torch's names")
    scale = _SCALES.get((name, ours[0]), "the same values as torch's")
    unused = "" if ours[0] in held else f" (not {ours[0]!r}: the group's options do not use it now)"
    return (f"{key!r} is torch.optim.{twin.torch}'s name; {where} keeps that state under {ours[0]!r} "  # type: ignore[union-attr]
            f"({scale}); this state holds {held}{unused}. Read opt.state[p][{ours[0]!r}], or "
            f"opt.state_dict(format='torch') for torch's names and values")


_LR_INSIDE = ("lr x torch's momentum_buffer where lr sits inside the buffer (lr_inside=True, or None with "
              "style='heavy_ball', the default), torch's buffer itself otherwise")
_SCALES = {("Momentum", "v"): _LR_INSIDE, ("Nesterov", "v"): _LR_INSIDE}


def _state_type(name: str) -> type[ParamState]:
    cls = type(f"{name}State", (ParamState,), {"__slots__": (), "twin": name, "__module__": __name__,
                                                "__doc__": f"descend.optim.{name}'s per-parameter state."})
    return cls


SGDState = _state_type("SGD")
MomentumState = _state_type("Momentum")
NesterovState = _state_type("Nesterov")
AdagradState = _state_type("Adagrad")
RMSpropState = _state_type("RMSprop")
AdamState = _state_type("Adam")
AdamWState = _state_type("AdamW")
STATE_TYPES = {t.twin: t for t in (SGDState, MomentumState, NesterovState, AdagradState, RMSpropState,
                                   AdamState, AdamWState)}


def state_type(opt: Any) -> type[ParamState]:
    """The per-parameter state class of ``opt`` (its twin's, else the plain :class:`ParamState`)."""
    from .compat import twin_of

    found = twin_of(type(opt))
    return STATE_TYPES.get(found[0], ParamState) if found else ParamState
