"""Done-when 5: DistributedDataParallel with 2 gloo processes equals one process on the same global batches."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.train import _ddp_worker as W


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")
def test_two_gloo_ranks_end_where_one_process_ends(tmp_path) -> None:
    mp.spawn(W.worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for i, (b, k) in enumerate(W.CASES):
        single, result, seen = W.fit(b, k)
        assert all(r[i]["iterations"] == result.iterations == 2 * math.ceil(math.ceil(256 / b) / k) for r in ranks)
        # each rank read its shard of every global batch: sizes b // 2 and b - b // 2 (rank 0 the larger)
        assert [s0 + s1 for s0, s1 in zip(ranks[0][i]["seen"], ranks[1][i]["seen"])] == seen
        assert all(s0 - s1 in (0, 1) for s0, s1 in zip(ranks[0][i]["seen"], ranks[1][i]["seen"]))
        for name, p in single.state_dict().items():
            for r in ranks:
                assert (r[i]["params"][name] - p).abs().max().item() <= 1e-6, (b, k, name)
            assert torch.equal(ranks[0][i]["params"][name], ranks[1][i]["params"][name])
        # the epoch's training loss is reduced over the ranks' shards
        for h0, h in zip(ranks[0][i]["history"], result.history):
            assert h0["train_loss"] == pytest.approx(h["train_loss"], abs=1e-6)
        assert ranks[0][i]["final"]["train_accuracy"] == pytest.approx(result.final["train_accuracy"], abs=1e-9)
