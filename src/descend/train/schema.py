"""What a checkpoint's training state must look like, checked before anything is restored.

A checkpoint's checksum proves that its bytes are the ones that were written, not
that a descend run wrote them: a file crafted (or edited and re-summed) with the
wrong types, missing or extra entries, or tensors of the wrong shape or dtype
must be refused in plain words, with nothing changed, instead of failing
half-way through a resume with a Python traceback. Two layers:

* :func:`check_state`: the state on its own (every entry's type and shape; the RNG
  states are tried on throwaway generators), run by
  :func:`descend.train.checkpoint.load`;
* :func:`check_for_run` and :func:`check_optimizer_state`: the state against the run
  that resumes it (the phase, the position in the epoch, the model's dtypes, the
  optimizer's hyperparameters and state), run by
  :func:`descend.train.checkpoint.restore` before the optimizer, the model or any
  counter is touched.

Each raises :class:`BadState` with a sentence that names the entry, what it holds and
what belongs there.
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import torch

from ..optim import _validate as ranges

# written by every checkpoint of this format, and written by some (older ones lack them)
REQUIRED = (
    "iteration", "epoch", "batch_in_epoch", "consumed", "phase", "model", "signature", "optimizer",
    "scheduler", "swats", "rng", "running", "history", "log", "phase_log", "metrics_offset", "fingerprint",
    "elapsed", "config",
)
OPTIONAL = ("optimizer_name", "metrics_sha256", "changes", "extra_state")
COUNTS = ("iteration", "epoch", "batch_in_epoch", "consumed", "phase", "metrics_offset")
# fields of the metric records (history, log, phase_log) that the run reads back as numbers
_RECORD_COUNTS = ("iteration", "epoch", "phase")
_RECORD_NUMBERS = ("loss", "train_loss", "val_loss", "val_accuracy", "lr", "elapsed", "examples_per_s")


class BadState(ValueError):
    """The state is not one a descend run wrote; the message says which entry and why."""


def _shown(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    if isinstance(value, dict):
        return f"a dict with keys {sorted(map(str, value))[:8]}"
    if isinstance(value, list | tuple):
        return f"a {type(value).__name__} of {len(value)} items"
    text = repr(value)
    return f"{text[:60]}{'...' if len(text) > 60 else ''} ({type(value).__name__})"


def _expect(ok: bool, where: str, value: Any, wanted: str) -> None:
    if not ok:
        raise BadState(f"its {where} is {_shown(value)}, where {wanted} belongs")


def is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _count(where: str, v: Any) -> None:
    _expect(is_count(v), where, v, "a whole number >= 0")


def _keys(where: str, d: Any, keys: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    _expect(isinstance(d, dict), where, d, f"a dict with {', '.join(keys)}")
    missing = [k for k in keys if k not in d]
    extra = sorted(str(k) for k in d if k not in keys and k not in optional)
    if missing:
        raise BadState(f"its {where} lacks {', '.join(missing)}")
    if extra:
        raise BadState(f"its {where} has entries no descend run writes ({', '.join(extra)})")


def _str_dict(where: str, d: Any) -> None:
    _expect(isinstance(d, dict) and all(isinstance(k, str) for k in d), where, d, "a dict with text keys")


def _records(where: str, records: Any) -> None:
    _expect(isinstance(records, list), where, records, "a list of metric records")
    for i, r in enumerate(records):
        _str_dict(f"{where}[{i}]", r)
        for k in _RECORD_COUNTS:
            if r.get(k) is not None:
                _count(f"{where}[{i}].{k}", r[k])
        for k in _RECORD_NUMBERS:
            if r.get(k) is not None:
                _expect(is_number(r[k]), f"{where}[{i}].{k}", r[k], "a number")


def _rng(rng: Any) -> None:
    _keys("rng", rng, ("torch", "cuda", "numpy", "python"))
    t = rng["torch"]
    _expect(isinstance(t, torch.Tensor) and t.dtype == torch.uint8 and t.dim() == 1, "rng.torch", t,
            "torch's generator state (a uint8 tensor)")
    try:
        torch.Generator().set_state(t)  # (a throwaway generator: torch checks the size)
    except RuntimeError:
        raise BadState(f"its rng.torch is {_shown(t)}, not a state of torch's CPU generator") from None
    cuda = rng["cuda"]
    _expect(cuda is None or (isinstance(cuda, list) and all(
        isinstance(c, torch.Tensor) and c.dtype == torch.uint8 for c in cuda)), "rng.cuda", cuda,
        "None or a list of uint8 tensors (one per CUDA device)")
    n = rng["numpy"]
    _keys("rng.numpy", n, ("kind", "keys", "pos", "has_gauss", "cached"))
    try:
        np.random.RandomState().set_state(
            (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
        ok = isinstance(n["keys"], torch.Tensor) and is_count(n["pos"]) and is_count(n["has_gauss"]) \
            and is_number(n["cached"])
    except (AttributeError, TypeError, ValueError, OverflowError):
        ok = False
    _expect(ok, "rng.numpy", n, "numpy's generator state (kind, keys, pos, has_gauss, cached)")
    py = rng["python"]
    try:
        version, internal, gauss = py
        random.Random().setstate((version, tuple(internal), gauss))
        ok = is_count(version) and all(is_count(x) for x in internal) and (gauss is None or is_number(gauss))
    except (TypeError, ValueError, OverflowError):
        ok = False
    _expect(ok, "rng.python", py, "Python's generator state [version, 625 numbers, gauss]")


def _optimizer(opt: Any) -> None:
    _expect(isinstance(opt, dict), "optimizer", opt, "an optimizer state dict (state, param_groups)")
    _expect(isinstance(opt.get("state"), dict), "optimizer.state", opt.get("state"), "a dict of parameter states")
    groups = opt.get("param_groups")
    _expect(isinstance(groups, list) and bool(groups), "optimizer.param_groups", groups, "a list of param groups")
    for i, g in enumerate(opt["param_groups"]):
        _str_dict(f"optimizer.param_groups[{i}]", g)
        params = g.get("params")
        _expect(isinstance(params, list) and all(is_count(p) for p in params), f"optimizer.param_groups[{i}].params",
                params, "a list of parameter indices")
    for pid, st in opt["state"].items():
        where = f"optimizer.state[{pid!r}]"
        _str_dict(where, st)
        for k, v in st.items():
            _expect(v is None or isinstance(v, torch.Tensor | bool | int | float), f"{where}.{k}", v,
                    "a tensor or a number")


def check_state(state: Any) -> None:
    """BadState unless ``state`` has every entry of a training state, each of the right type and shape."""
    if not isinstance(state, dict):
        raise BadState("its payload is not a training state")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise BadState(f"it lacks {', '.join(missing)}")
    extra = sorted(str(k) for k in state if k not in REQUIRED and k not in OPTIONAL)
    if extra:
        raise BadState(f"it has entries no descend run writes ({', '.join(extra)})")
    for k in COUNTS:
        _count(k, state[k])
    e = state["elapsed"]
    _expect(is_number(e) and math.isfinite(e) and e >= 0, "elapsed", e, "a number of seconds >= 0")
    model, sig = state["model"], state["signature"]
    _expect(isinstance(model, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                            for k, v in model.items()), "model", model,
            "a model state dict (names to tensors)")
    _expect(isinstance(sig, dict) and all(isinstance(k, str) and isinstance(v, list) and all(map(is_count, v))
                                          for k, v in sig.items()), "signature", sig, "a dict of tensor names to shapes")
    if list(model) != list(sig) or any(list(model[k].shape) != sig[k] for k in model):
        odd = [k for k in model if k not in sig or list(model[k].shape) != sig[k]] + [k for k in sig if k not in model]
        raise BadState(f"its model tensors do not match its own signature (names and shapes; {', '.join(odd[:5])})")
    _optimizer(state["optimizer"])
    if "optimizer_name" in state:
        _expect(isinstance(state["optimizer_name"], str), "optimizer_name", state["optimizer_name"], "a class name")
    _expect(state["scheduler"] is None or isinstance(state["scheduler"], dict), "scheduler", state["scheduler"],
            "None or a Scheduler state dict")
    sw = state["swats"]
    if sw is not None:
        _keys("swats", sw, ("k", "lam", "gamma", "switch_lr", "beta1", "beta2", "eps"))
        _count("swats.k", sw["k"])
        for k in ("lam", "beta1", "beta2", "eps", "gamma", "switch_lr"):
            if not (k in ("gamma", "switch_lr") and sw[k] is None):
                _expect(is_number(sw[k]), f"swats.{k}", sw[k], "a number")
    _rng(state["rng"])
    run = state["running"]
    _keys("running", run, ("ev", "en", "wv", "wn"))
    for v, n in (("ev", "en"), ("wv", "wn")):
        _expect(isinstance(run[v], list) and all(map(is_number, run[v])), f"running.{v}", run[v], "a list of losses")
        _expect(isinstance(run[n], list) and all(map(is_count, run[n])) and len(run[n]) == len(run[v]),
                f"running.{n}", run[n], f"a list of {len(run[v])} batch sizes")
    for k in ("history", "log", "phase_log"):
        _records(k, state[k])
    _expect(bool(state["phase_log"]), "phase_log", state["phase_log"], "at least the record of the first phase")
    for i, r in enumerate(state["phase_log"]):
        _count(f"phase_log[{i}].iteration", r.get("iteration"))
    sha = state.get("metrics_sha256")
    _expect(sha is None or (isinstance(sha, str) and len(sha) == 64), "metrics_sha256", sha, "a SHA-256 in hex")
    _str_dict("fingerprint", state["fingerprint"])
    _str_dict("config", state["config"])
    changes = state.get("changes")
    _expect(changes is None or (isinstance(changes, list) and all(isinstance(c, dict) for c in changes)),
            "changes", changes, "a list of records")
    ex = state.get("extra_state")
    _expect(ex is None or (isinstance(ex, dict) and all(isinstance(k, str) and isinstance(v, dict)
                                                         for k, v in ex.items())),
            "extra_state", ex, "a dict of names to state dicts (the Trainer's extra_state)")


def check_for_run(state: dict[str, Any], tr: Any) -> None:
    """BadState unless the state's phase, position and model dtypes are possible in the run ``tr``."""
    phases = 2 if tr.cfg.swats else len(tr.phases)
    _expect(state["phase"] < phases, "phase", state["phase"], f"a phase index below {phases} (this run's phases)")
    if tr.cfg.swats and state["phase"] == 1 and not (state["swats"] and is_number(state["swats"]["switch_lr"])):
        raise BadState("it is in SWATS's second phase but has no switch lr")
    if tr.stream is None:
        k, bpe, ipe = tr.cfg.accumulate, tr.batches_per_epoch, tr.iterations_per_epoch
        it, ep, b = state["iteration"], state["epoch"], state["batch_in_epoch"]
        if b >= bpe or b % k or it != ep * ipe + b // k:
            raise BadState(
                f"its position (iteration {it}, epoch {ep}, {b} batches into the epoch) is not one of this run, "
                f"which has {bpe} batches and {ipe} iterations per epoch"
            )
    mine = tr.module.state_dict()
    odd = [f"{k}: {v.dtype} saved, {mine[k].dtype} here" for k, v in state["model"].items()
           if k in mine and v.dtype != mine[k].dtype]
    if odd:
        raise BadState(f"its model tensors have other dtypes than this model's ({'; '.join(odd[:5])})")


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "a true/false flag"
    if is_number(v):
        return "a number"
    if isinstance(v, torch.Tensor):
        return "a tensor"
    if isinstance(v, str):
        return "a text"
    if isinstance(v, list | tuple):
        return "a list"
    return "None" if v is None else type(v).__name__


def check_optimizer_state(saved: dict[str, Any], opt: Any) -> None:
    """BadState unless ``saved`` fits the freshly built ``opt``: as many groups and parameters, each
    hyperparameter of the kind the optimizer holds (a finite number where it has a number), and
    floating state tensors for floating parameters."""
    groups, specs = opt.param_groups, getattr(type(opt), "_specs", None) or {}
    if len(saved["param_groups"]) != len(groups):
        raise BadState(f"its optimizer has {len(saved['param_groups'])} param groups, this run's has {len(groups)}")
    for i, (s, g) in enumerate(zip(saved["param_groups"], groups)):
        if len(s["params"]) != len(g["params"]):
            raise BadState(f"its optimizer's param group {i} has {len(s['params'])} parameters, this run's has "
                           f"{len(g['params'])}")
        for k, v in g.items():
            if k == "params" or k not in s or v is None:
                continue
            w = s[k]
            numeric = is_number(v) or isinstance(v, torch.Tensor)
            ok = (is_number(w) and math.isfinite(w)) or isinstance(w, torch.Tensor) if numeric else \
                w is None or _kind(w) == _kind(v)
            _expect(ok, f"optimizer's {k} of param group {i}", w, f"{_kind(v)} (as {type(opt).__name__} holds)")
            spec = specs.get(k)
            if spec is not None and not isinstance(w, torch.Tensor):
                try:
                    ranges.check(k, w, spec)
                except ValueError as err:
                    raise BadState(f"its optimizer's param group {i} holds a value {type(opt).__name__} refuses: "
                                   f"{err}") from None
        for pid, p in zip(s["params"], g["params"]):
            for k, v in (saved["state"].get(pid) or {}).items():
                if isinstance(v, torch.Tensor) and k != "step" and p.is_floating_point() and \
                        not (v.is_floating_point() or v.is_complex()):
                    raise BadState(f"its optimizer state {k!r} of parameter {pid} is {_shown(v)}, where a "
                                   f"floating-point tensor belongs (the parameter is {p.dtype})")
