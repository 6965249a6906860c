"""A small training run for the resume tests, run as ``python -m tests.train._killable``.

``--kill-after K`` SIGKILLs the process in the callback of iteration K (before
any checkpoint of that iteration); ``--kill-in-write K`` SIGKILLs it in the middle
of writing the checkpoint of iteration K (half of the temporary file written).
Without a kill the run finishes and saves its final parameters and records to
``--result``.
"""

from __future__ import annotations

import argparse
import os
import signal

import torch

from descend import data
from descend.train import Phase, TrainConfig, Trainer, build_model
from descend.train import checkpoint as ckpt


def config(out: str) -> TrainConfig:
    """Dropout (RNG), a cosine schedule, Adam then momentum SGD, 17 iterations per epoch."""
    return TrainConfig(
        phases=[Phase(2, "adam", "cosine", lr=3e-3), Phase(2, "momentum", lr=0.02)],
        model_options={"hidden": (32,), "dropout": 0.2},
        batch_size=64, checkpoint_every=5, log_every=3, out=out, progress=False, plots=False,
    )


def run(out: str, callback=None) -> tuple[torch.nn.Module, Trainer]:
    """The run itself: digits, an MLP with dropout, the configuration above."""
    ds = data.load("digits")
    cfg = config(out)
    model = build_model("mlp", ds, cfg.model_options, seed=0)
    trainer = Trainer(model, ds, cfg, callback=callback)
    return model, trainer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--result")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--kill-after", type=int, default=0)
    ap.add_argument("--kill-in-write", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)

    def callback(trainer: Trainer) -> None:
        if trainer.iteration == args.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    model, trainer = run(args.out, callback=callback)
    if args.kill_in_write:
        write = ckpt._write

        def half_then_die(f, payload: bytes) -> None:
            if trainer.iteration == args.kill_in_write:
                f.write(payload[: len(payload) // 2])
                f.flush()
                os.fsync(f.fileno())
                os.kill(os.getpid(), signal.SIGKILL)
            write(f, payload)

        ckpt._write = half_then_die
    result = trainer.fit(resume=args.resume)
    torch.save(
        {"model": model.state_dict(), "history": result.history, "log": result.log,
         "final": result.final, "phases": result.phases, "iterations": result.iterations},
        args.result,
    )


if __name__ == "__main__":
    main()
