"""The two ways a training run stops early, each with a message that says what to do."""

from __future__ import annotations

from pathlib import Path


class TrainingDiverged(RuntimeError):
    """The loss (or a gradient) became NaN or infinite.

    Raised before the offending backward pass or optimizer step, so the
    parameters are those of the last finite step; no checkpoint is written
    from a non-finite state. A failure at iteration 1, before any step, is the
    initial model's on the data, which no lr causes: ``cause`` says so instead
    of advising a lower lr. Attributes: ``iteration`` (the step that failed,
    1-based), ``epoch``, ``lr``, ``value`` (the loss, if that is what failed)
    and ``checkpoint`` (the last good checkpoint written or resumed from, or
    None).
    """

    def __init__(
        self,
        *,
        iteration: int,
        epoch: int | None,
        lr: float | None,
        checkpoint: Path | None,
        checkpoint_iteration: int | None = None,
        what: str = "the loss",
        value: float | None = None,
        cause: str | None = None,
    ) -> None:
        self.iteration = iteration
        self.epoch = epoch
        self.lr = lr
        self.checkpoint = checkpoint
        self.checkpoint_iteration = checkpoint_iteration
        self.value = value
        where = f"iteration {iteration}" + (f" (epoch {epoch + 1})" if epoch is not None else "")
        shown = "" if value is None else f" = {value}"
        lr_txt = "unknown" if lr is None else f"{lr:g}"
        if checkpoint is None:
            last = "no checkpoint was written before it"
        else:
            last = f"last good checkpoint: {checkpoint} (iteration {checkpoint_iteration})"
        hint = "try a lower learning rate"
        if lr:
            hint += f", e.g. --lr {lr / 10:g}"
        hint = cause or f"{hint} (or clip gradients with --clip-norm)"
        super().__init__(
            f"training diverged at {where}: {what} is not finite{shown} with lr {lr_txt}; {last}; {hint}"
        )


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable (truncated, corrupt) or belongs to another run."""
