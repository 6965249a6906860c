"""Where a run's batches come from, and how its splits are evaluated.

Four kinds of ``data``, one interface (:class:`Feed`):

=================================  ============================================================
a :class:`descend.data.Dataset`    batched by :class:`descend.data.Batches` (batch size, seed,
                                   this rank's shard under DDP); val and test evaluated
an ``(X, y)`` pair of tensors      the same, without val/test splits
a re-iterable of batches           a ``torch.utils.data.DataLoader`` or a list of ``(xb, yb)``:
                                   one pass is one epoch, iterated again for the next one, so
                                   ``epochs`` and ``iterations`` work as for a Dataset;
                                   ``sampler.set_epoch(epoch)`` is called first when the
                                   loader's sampler has it (``DistributedSampler``); the peek
                                   at its first batch (task, default loss) leaves the loader's
                                   and its sampler's generators as they were
a one-shot iterator (generator)    a stream: consumed once, needs an iteration budget
=================================  ============================================================

``eval_data`` gives the splits to evaluate when ``data`` has none: a Dataset,
a re-iterable of batches (the validation split), or a mapping
``{"val": ..., "test": ...}`` of loaders or ``(X, y)`` pairs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

import torch

from .. import data as D
from .. import models
from .distributed import group_scales

SPLITS = ("train", "val", "test")


def _is_pair(x: Any) -> bool:
    return isinstance(x, tuple) and len(x) == 2 and all(isinstance(t, torch.Tensor) for t in x)


def _reiterable(x: Any) -> bool:
    return isinstance(x, Iterable) and not isinstance(x, Iterator | torch.Tensor | str | bytes | Mapping)


def set_epoch(loader: Any, epoch: int) -> None:
    """Call ``set_epoch(epoch)`` on the loader's sampler (or batch sampler) when it has one."""
    for sampler in (getattr(loader, "sampler", None), getattr(getattr(loader, "batch_sampler", None), "sampler", None),
                    getattr(loader, "batch_sampler", None)):
        if sampler is not None and callable(getattr(sampler, "set_epoch", None)):
            sampler.set_epoch(epoch)
            return


def _generators(loader: Any) -> list[torch.Generator]:
    """The random generators a loader's iteration draws from (its own, its sampler's)."""
    out: list[torch.Generator] = []
    for obj in (loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None),
                getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
        gen = getattr(obj, "generator", None)
        if isinstance(gen, torch.Generator) and all(gen is not g for g in out):
            out.append(gen)
    return out


def first_batch(source: Any) -> Any:
    """The first batch of a re-iterable source, or None; the generators of a DataLoader (its own and
    its sampler's) are put back as they were, so the training epochs see the order they would have."""
    gens = _generators(source)
    states = [g.get_state() for g in gens]
    try:
        return next(iter(source), None)
    finally:
        for g, state in zip(gens, states):
            g.set_state(state)


def pair(batch: Any) -> tuple[Any, Any]:
    """``(inputs, targets)`` of one batch, or a ValueError saying what the batch is instead."""
    if isinstance(batch, tuple | list) and len(batch) == 2:
        return batch[0], batch[1]
    if isinstance(batch, Mapping):
        got = f"a {type(batch).__name__} with keys {list(batch)}"
    elif isinstance(batch, tuple | list):
        got = f"a {type(batch).__name__} of {len(batch)} items"
    elif isinstance(batch, torch.Tensor):
        got = f"a tensor of shape {tuple(batch.shape)} (for the whole data set at once pass the tuple (X, y))"
    else:
        got = type(batch).__name__
    raise ValueError(f"each batch of data must be an (inputs, targets) pair, got {got}; give the DataLoader a "
                     f"collate_fn that returns (inputs, targets), or map the batches to such pairs")


class Feed:
    """The training batches and the evaluation splits of a run (see the module docstring)."""

    def __init__(self, data: Any, eval_data: Any, cfg: Any, device: torch.device, rank: int, world: int) -> None:
        self.cfg, self.device, self.rank, self.world = cfg, device, rank, world
        self.batches: D.Batches | None = None
        self.loader: Any = None
        self.stream: Iterator | None = None
        self.dataset: D.Dataset | None = None
        self.splits: dict[str, Any] = {}
        self._peeked: dict[int, Any] = {}  # id(source) -> its first batch
        X = y = None
        if isinstance(data, D.Dataset):
            self.dataset = data if device.type == "cpu" else data.to(device)
            X, y = self.dataset.train
        elif _is_pair(data):
            X, y = (t.to(device) for t in data)
            self.splits["train"] = (X, y)
        elif _reiterable(data):
            self.loader = data
        elif isinstance(data, Iterable):
            self.stream = iter(data)
        else:
            raise ValueError(
                f"data must be a descend.data.Dataset, an (X, y) pair of tensors, a DataLoader or list of "
                f"(xb, yb) batches, or an iterator of batches, got {type(data).__name__}"
            )
        self._eval_data(eval_data)
        if self.loader is not None:
            self.splits.setdefault("train", every_example(self.loader))  # final train metrics: one pass
        self.task, self.n_classes = self._task(y)
        self.kind = "batches" if X is not None else "loader" if self.loader is not None else "stream"
        k = cfg.accumulate
        self.notes: list[str] = []  # what the run does other than asked (a batch larger than the data)
        if X is not None:
            size, note = D.fit_batch_size(cfg.batch_size, len(X))
            self.notes += [note] if note else []
            self.batches = D.Batches(X, y, size, shuffle=cfg.shuffle, seed=cfg.seed, drop_last=cfg.drop_last,
                                     rank=rank, world_size=world)
            self.batches_per_epoch = len(self.batches)
            self._scales = group_scales(self.batches.global_sizes(), k, rank, world)
        elif self.loader is not None:
            try:
                self.batches_per_epoch = len(self.loader)
            except TypeError:
                raise ValueError(
                    f"data of type {type(data).__name__} has no len(); epochs need it. Pass an iterator "
                    f"(iter(data)) to train on it as a stream with an iteration budget"
                ) from None
            if self.batches_per_epoch < 1:
                raise ValueError("data holds no batches (len(data) == 0)")
        else:
            self.batches_per_epoch = 0
        self.iterations_per_epoch = math.ceil(self.batches_per_epoch / k) if self.batches_per_epoch else 0
        self._stream_scales = None if k == 1 else [1.0 / k] * k

    def _eval_data(self, eval_data: Any) -> None:
        if eval_data is None:
            return
        if isinstance(eval_data, D.Dataset):
            if self.dataset is None:
                self.dataset = eval_data if self.device.type == "cpu" else eval_data.to(self.device)
            return
        items = eval_data.items() if isinstance(eval_data, Mapping) else [("val", eval_data)]
        for split, value in items:
            if split not in SPLITS:
                raise ValueError(f"eval_data keys must be among {', '.join(SPLITS)}, got {split!r}")
            if not (_is_pair(value) or _reiterable(value)):
                raise ValueError(
                    f"eval_data[{split!r}] must be an (X, y) pair or a DataLoader / list of batches, "
                    f"got {type(value).__name__} (a one-shot iterator cannot be evaluated twice)"
                )
            self.splits[split] = value

    def _first_batch(self, source: Any) -> Any:
        """:func:`first_batch`, once per source (a loader with workers starts them for each peek)."""
        if id(source) not in self._peeked:
            self._peeked[id(source)] = first_batch(source)
        return self._peeked[id(source)]

    def _first_targets(self) -> torch.Tensor | None:
        for source in (self.loader, self.splits.get("val"), self.splits.get("test")):
            if source is None:
                continue
            if _is_pair(source):
                return source[1]
            batch = self._first_batch(source)
            if batch is not None:
                return pair(batch)[1]
        return None

    def _task(self, y: torch.Tensor | None) -> tuple[str | None, int | None]:
        if self.dataset is not None:
            return self.dataset.task, self.dataset.n_classes
        if y is None:
            y = self._first_targets()
            if y is None:
                return None, None
            classification = not y.is_floating_point()
            return ("classification" if classification else "regression"), None
        classification = not y.is_floating_point()
        return ("classification" if classification else "regression"), (int(y.max()) + 1 if classification else None)

    def example_input(self) -> torch.Tensor | None:
        """Two training inputs (one if there is one) to probe the model's output size: a BatchNorm that
        keeps no running statistics normalizes by the batch's also in eval mode, and refuses one example."""
        if self.batches is not None:
            return self.batches.X[:2]
        if self.dataset is not None:
            return self.dataset.X_train[:2]
        if self.loader is not None:
            batch = self._first_batch(self.loader)
            if batch is not None:
                return pair(batch)[0][:2].to(self.device)
        return None

    def default_loss(self, module: torch.nn.Module) -> Any:
        """The loss for the task and the model's outputs (cross-entropy, binary CE or MSE)."""
        x = self.example_input()
        if self.task is None or x is None:
            raise ValueError("give loss=... when training from a stream without eval_data")
        was = module.training
        module.eval()
        with torch.no_grad():
            out = module(x)
        module.train(was)
        if not isinstance(out, torch.Tensor):
            raise ValueError(
                f"the model returns a {type(out).__name__}, not a tensor, so no default loss fits it: give "
                f"loss=... taking the model's output and the targets, e.g. loss=lambda out, y: "
                f"F.cross_entropy(out[0], y)"
            )
        n_out = out.shape[-1] if out.ndim == 2 else 1
        n_classes = self.n_classes or (2 if n_out == 1 else n_out)
        return models.loss_for(self.task, n_classes, n_outputs=n_out)

    # ---------------------------------------------------------------- training batches
    def groups(self, epoch: int, skip: int) -> Iterator[tuple[list[Any], list[float] | None]]:
        """``(batches of one step, their loss weights)``, epoch after epoch from ``epoch``, skipping
        the first ``skip`` batches of that epoch (resume); for a stream, until it ends."""
        k = self.cfg.accumulate
        if self.stream is not None:
            while group := list(islice(self.stream, k)):
                yield self._to(group), self._stream_scales
            return
        while True:
            batches = self._epoch(epoch)
            for _ in range(skip):  # resume: skip what this epoch already consumed
                next(batches)
            g = skip // k
            while group := list(islice(batches, k)):
                yield self._to(group), self._weights(group, g)
                g += 1
            epoch, skip = epoch + 1, 0

    def _epoch(self, epoch: int) -> Iterator[Any]:
        if self.batches is not None:
            return self.batches.iter_epoch(epoch)
        set_epoch(self.loader, epoch)
        return iter(self.loader)

    def _weights(self, group: Sequence[Any], g: int) -> list[float] | None:
        if self.batches is not None:
            return self._scales[g]
        if len(group) == 1:
            return None
        sizes = [int(xb.shape[0]) for xb, _ in group]
        return [s / sum(sizes) for s in sizes]  # the group's loss is the mean over its examples

    def _to(self, group: list[Any]) -> list[Any]:
        if self.batches is not None:
            return group
        pairs = [pair(b) for b in group]
        if self.device.type == "cpu":
            return pairs
        return [(x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)) for x, y in pairs]

    def skip_stream(self, n: int) -> None:
        """Resume a stream: drop the ``n`` batches the checkpointed run had consumed."""
        if self.stream is not None:
            for _ in islice(self.stream, n):
                pass

    # ---------------------------------------------------------------- evaluation
    def has(self, split: str) -> bool:
        if split in self.splits:
            return True
        return self.dataset is not None and getattr(self.dataset, f"n_{split}") > 0

    def split_batches(self, split: str, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        source = self.splits.get(split)
        if source is None:
            source = self.dataset.part(split)
        if _is_pair(source):
            X, y = (t.to(self.device) for t in source)
            for i in range(0, len(X), batch_size):
                yield X[i : i + batch_size], y[i : i + batch_size]
            return
        for batch in source:
            xb, yb = pair(batch)
            yield xb.to(self.device), yb.to(self.device)

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"task": self.task, "n_classes": self.n_classes, "kind": self.kind}
        if self.dataset is not None:
            ds = self.dataset
            out.update(name=ds.name, n_train=ds.n_train, n_val=ds.n_val, n_test=ds.n_test, n_features=ds.n_features)
            if ds.source:  # your own file: how it was read (rows, features, classes, separator...)
                out.update(source=ds.source, note=ds.note)
        if self.batches is not None:
            out.update(batch_size=self.batches.batch_size, n_train=self.batches.n)
        if self.loader is not None:
            out["batches_per_epoch"] = self.batches_per_epoch
            out.update(loader_settings(self.loader))
        return out


def every_example(loader: Any) -> Any:
    """``loader`` for evaluating on its examples: a plain DataLoader that shuffles or drops its last
    batch is replaced by one over the same data, in order and whole (with the same batch size and
    collate function); the final train metrics were otherwise those of a random subset. Anything else
    (a list of batches, a sampler of the user's) is evaluated as it is."""
    if not isinstance(loader, torch.utils.data.DataLoader) or loader.batch_size is None:
        return loader
    sampler = loader.sampler
    if type(sampler) is torch.utils.data.SequentialSampler and not loader.drop_last:
        return loader
    if type(sampler) not in (torch.utils.data.RandomSampler, torch.utils.data.SequentialSampler):
        return loader
    return torch.utils.data.DataLoader(
        loader.dataset, batch_size=loader.batch_size, collate_fn=loader.collate_fn, num_workers=loader.num_workers,
        pin_memory=loader.pin_memory, worker_init_fn=loader.worker_init_fn, timeout=loader.timeout,
        multiprocessing_context=loader.multiprocessing_context if loader.num_workers else None,
    )


def loader_settings(loader: Any) -> dict[str, Any]:
    """A DataLoader's own ``batch_size``, ``shuffle`` and ``drop_last`` (what its batches are; the
    run's ``batch_size``, ``shuffle`` and ``drop_last`` apply only to tensors), ``{}`` for anything else.
    ``batch_size`` is None under a batch sampler of the user's; ``shuffle`` None for a sampler that is
    neither sequential nor random."""
    if not isinstance(loader, torch.utils.data.DataLoader):
        return {}
    sampler = loader.sampler
    if isinstance(sampler, torch.utils.data.RandomSampler | torch.utils.data.SequentialSampler):
        shuffle = isinstance(sampler, torch.utils.data.RandomSampler)
    else:
        shuffle = getattr(sampler, "shuffle", None)  # DistributedSampler's
    custom = loader.batch_size is None
    return {"batch_size": loader.batch_size, "shuffle": None if custom else shuffle,
            "drop_last": None if custom else loader.drop_last}


@torch.no_grad()
def evaluate(feed: Feed, module: torch.nn.Module, loss_fn: Any, split: str, batch_size: int) -> dict[str, float]:
    """Mean loss (and accuracy for classifiers) of ``module`` on ``split``, in eval mode.

    torch's random state is put back afterwards: iterating a DataLoader draws a seed from torch's
    generator (even an unshuffled one), so evaluating on a loader would otherwise change the dropout
    masks and the shuffled order of the training after it: the run would differ from one without
    that evaluation, and from the hand-written loop."""
    was = module.training
    module.eval()
    total, correct, n = 0.0, 0, 0
    scored = feed.task == "classification"  # accuracy: only of a model whose output is the logits tensor
    device = feed.device
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        try:
            for xb, yb in feed.split_batches(split, batch_size):
                out = module(xb)
                total += float(loss_fn(out, yb)) * len(yb)
                n += len(yb)
                scored = scored and isinstance(out, torch.Tensor)
                if scored:
                    correct += int((models.losses.predictions(out) == yb.reshape(-1)).sum())
        finally:
            module.train(was)
    if n == 0:
        return {"loss": float("nan")}
    res = {"loss": total / n}
    if scored:
        res["accuracy"] = correct / n
    return res
