"""Checkpoints that survive a crash: atomic writes, validated reads, every RNG.

A checkpoint is one ``torch.save`` file holding only tensors, numbers,
strings, lists and dicts (it loads with ``weights_only=True``):

==================  ==========================================================
``model``           the (unwrapped) model's ``state_dict``, buffers included
``signature``       ``{name: shape}`` of that state dict, to reject another model
``optimizer``       the current phase's optimizer ``state_dict``
``scheduler``       the current phase's ``Scheduler.state_dict`` (or None)
``phase``           phase index and the iteration it started at; SWATS state
``position``        iteration, epoch, batches consumed in the epoch
``running``         the epoch's and the log window's partial loss sums
``rng``             torch (CPU and CUDA), numpy and Python generator states
``history``         epoch records and logged iteration records so far
``metrics_offset``  the size of ``metrics.jsonl`` when it was written
``fingerprint``     batch size, seed, data size, phases...: what must match to resume
==================  ==========================================================

**Atomic write.** The bytes go to a temporary file next to the target
(``.checkpoint.pt.tmp-<pid>``), are flushed and fsynced, and the file is then
renamed over the target with ``os.replace`` (atomic on POSIX and Windows), and
the folder is fsynced. A crash at any moment leaves either the old or the new
checkpoint, never a mixture; a leftover temporary file is removed when the run
folder is opened again.
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import CheckpointError

FORMAT = "descend.train.checkpoint/1"
NAME = "checkpoint.pt"


def _write(f: Any, payload: bytes) -> None:
    """Write ``payload`` to the open file ``f`` (one place, so tests can interrupt it)."""
    f.write(payload)


def atomic_write_bytes(path: str | Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            _write(f, payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - folders cannot be opened on some systems
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Delete leftover ``.*.tmp-*`` files of interrupted writes in ``folder``; returns them."""
    gone = []
    for p in Path(folder).glob(".*.tmp-*"):
        p.unlink(missing_ok=True)
        gone.append(p)
    return gone


def serialize(state: dict[str, Any]) -> bytes:
    """The bytes of a checkpoint holding ``state`` (with the format tag)."""
    buf = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buf)
    return buf.getvalue()


def save(path: str | Path, state: dict[str, Any]) -> None:
    """Serialize ``state`` and write it atomically to ``path``."""
    atomic_write_bytes(path, serialize(state))


def load(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save`.

    Raises :class:`CheckpointError` naming the path when the file is missing,
    is not a checkpoint, or is truncated or corrupt.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}; nothing to resume (check --out; a run that stopped before "
            f"its first checkpoint starts over with --overwrite)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure to read means a bad file
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is truncated or corrupt ({reason})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a descend training checkpoint ({FORMAT})")
    return state


def signature(state_dict: dict[str, torch.Tensor]) -> dict[str, list[int]]:
    """``{name: shape}`` of a model state dict."""
    return {k: list(v.shape) for k, v in state_dict.items()}


def check_signature(path: Path, saved: dict[str, list[int]], model_sd: dict[str, torch.Tensor]) -> None:
    """CheckpointError unless the checkpoint's model has exactly this model's tensors and shapes."""
    mine = signature(model_sd)
    if saved == mine:
        return
    missing = sorted(set(mine) - set(saved))
    extra = sorted(set(saved) - set(mine))
    shapes = [f"{k}: {saved[k]} vs {mine[k]}" for k in mine if k in saved and saved[k] != mine[k]]
    details = []
    if missing:
        details.append(f"it lacks {', '.join(missing[:5])}")
    if extra:
        details.append(f"it has extra {', '.join(extra[:5])}")
    if shapes:
        details.append(f"shapes differ ({'; '.join(shapes[:5])})")
    raise CheckpointError(
        f"checkpoint {path} was saved from another model: {', '.join(details)}; build the model as "
        f"in the run that wrote it"
    )


def finite(*trees: Any) -> bool:
    """Whether every floating tensor inside ``trees`` (dicts, lists) is finite."""
    stack = list(trees)
    while stack:
        x = stack.pop()
        if isinstance(x, torch.Tensor):
            if x.is_floating_point() and x.numel() and not bool(torch.isfinite(x).all()):
                return False
        elif isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, list | tuple):
            stack.extend(x)
    return True


# ---------------------------------------------------------------------------- RNG states


def rng_state() -> dict[str, Any]:
    """torch (CPU, every CUDA device), numpy and Python RNG states, as plain values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    py = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": {
            "kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached),
        },
        "python": [py[0], list(py[1]), py[2]],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
