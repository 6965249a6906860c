"""descend.lab: watch optimizers work (placeholder, filled below)."""

from .runner import Run, Runs, minimize, run_many

__all__ = ["Run", "Runs", "minimize", "run_many"]
