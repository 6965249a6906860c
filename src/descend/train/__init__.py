r"""Training loops of the notes: full-batch GD, mini-batch SGD and pure SGD, and the practice around them.

How much data feeds one step decides the method (note 003): ``batch_size=None``
is full-batch gradient descent (1 iteration per epoch), ``batch_size=1`` pure
SGD (``n`` iterations per epoch), anything between mini-batch SGD
(``ceil(n / b)`` iterations per epoch; the data is shuffled each epoch, then
split). ::

    from descend.train import train, Trainer, TrainConfig, Phase, PartOptimizer
    r = train("digits", "mlp", optimizer="adam:lr=1e-3", epochs=20, batch_size=64, out="runs/digits")
    r.final["test_accuracy"], r.history[-1]["val_loss"]
    train("my.csv", "mlp", target="label")                      # your own data (descend.data.files)

    Trainer(model, loader, loss=F.cross_entropy, epochs=5).fit() # a DataLoader: epochs as usual
    Trainer(model, dataset, TrainConfig(phases=[Phase(10, "adam", lr=1e-3),
                                                Phase(10, "sgd", lr=0.05)])).fit()

=====================  ==================================================================
``Trainer``            model, loss, data, optimizer or phases, schedule, budget; ``fit(resume=...)``
``TrainConfig``        every setting, saved resolved in ``summary.json``
``Phase``              ``(duration, optimizer, schedule)``; hand-off in :mod:`descend.train.phases`
``PartOptimizer``      per-part optimizers (pretrained / new / frozen) as one optimizer
``train(...)``         load a data set (name or file), build a model by name, train
``TrainResult``        history, final metrics, hints, paths
``TrainingDiverged``   non-finite loss: iteration, lr, last good checkpoint, advice
``CheckpointError``    missing, corrupt or foreign checkpoint; a resume with changed settings
=====================  ==================================================================

The package by job: ``trainer`` (the loop), ``feed`` (batches from a Dataset,
a DataLoader or a stream; evaluation), ``phases`` (plans, optimizer switches,
SWATS), ``distributed`` (DDP), ``checkpoint`` (save, verify, resume),
``run`` (run folder, summary, result, hints), ``observe`` (metrics.jsonl,
TensorBoard), ``config`` and ``parts``. Nothing here draws or prints: the
CLI shows progress and figures through the Trainer's ``on_progress`` and
``on_end`` hooks.
"""

from .checkpoint import load as load_checkpoint
from .config import Phase, TrainConfig, parse_phases
from .errors import CheckpointError, TrainingDiverged
from .observe import read_metrics
from .parts import MultiOptimizer, PartOptimizer
from .phases import Swats
from .run import TrainResult, build_model, train
from .trainer import Trainer

__all__ = [
    "Trainer",
    "TrainConfig",
    "TrainResult",
    "Phase",
    "PartOptimizer",
    "MultiOptimizer",
    "Swats",
    "train",
    "build_model",
    "parse_phases",
    "load_checkpoint",
    "read_metrics",
    "TrainingDiverged",
    "CheckpointError",
]
