"""The request bodies of the web API, with bounds that follow the server's limits.

Numbers are refused when they are ``true``/``false`` (JSON would let them
through as 1 and 0); a hyperparameter or schedule option that is NaN,
Infinity, a list or an object gets one sentence naming what is allowed.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from descend import landscapes
from descend import schedules as S

from . import catalog
from .errors import number, scalar

if TYPE_CHECKING:
    from .app import Limits

Name = Annotated[str, Field(min_length=1, max_length=40)]
HyperValue = Annotated[Any, AfterValidator(scalar)]
OptionValue = Annotated[Any, AfterValidator(partial(scalar, lists=True))]
Coordinate = Annotated[float, BeforeValidator(number), Field(allow_inf_nan=False, ge=-1e4, le=1e4)]
Options = Annotated[dict[Name, OptionValue], Field(
    default_factory=dict, max_length=12, description='options by name, e.g. {"final_lr": 0.001, "warmup": 50}')]
Hyper = Annotated[dict[Name, HyperValue], Field(
    default_factory=dict, max_length=16, description='constructor keyword arguments, e.g. {"lr": 0.02}')]


class Strict(BaseModel):
    """A request part that refuses fields it does not know."""

    model_config = ConfigDict(extra="forbid")
SESSION_HEADER = "x-descend-session"


def request_models(limits: Limits) -> dict[str, type[BaseModel]]:
    """Request models whose bounds follow ``limits``."""
    LandscapeName = Literal[tuple(landscapes.names())]  # type: ignore[valid-type]
    OptimizerName = Literal[tuple(catalog.optimizer_names())]  # type: ignore[valid-type]
    ScheduleName = Literal[tuple(S.describe())]  # type: ignore[valid-type]
    Steps = Annotated[int, BeforeValidator(number), Field(ge=1, le=limits.max_steps, strict=True)]
    Rate = Annotated[float, BeforeValidator(number), Field(ge=0.0, le=1e6, allow_inf_nan=False)]
    # any lr a run takes (the optimizers allow [0, inf)): the preview draws what the run would use
    LearningRate = Annotated[float, BeforeValidator(number), Field(ge=0.0, allow_inf_nan=False)]

    class ScheduleSpec(Strict):
        """A schedule by name with its options (as ``descend.schedules.build`` takes them)."""

        name: ScheduleName = Field(description="schedule name, e.g. cosine")
        options: Options

    class RunSpec(Strict):
        """One trajectory: an optimizer, its hyperparameters and an optional schedule."""

        optimizer: OptimizerName = Field(description="optimizer name (GET /api/optimizers)")
        hyper: Hyper
        schedule: ScheduleSpec | None = Field(default=None, description="lr schedule; none: constant lr")

    class RunRequest(Strict):
        """Runs from one start on one landscape, as ``descend.lab.minimize`` takes them."""

        landscape: LandscapeName = Field(description="landscape name (GET /api/landscapes)")
        start: tuple[Coordinate, Coordinate] | None = Field(
            default=None, description="start (x, y); none: the landscape's suggested start"
        )
        steps: Steps = Field(default=500, description="step budget per run")
        tol: Rate = Field(default=1e-8, description="steps_to_tol counts steps until f - f* < tol")
        record_every: Steps = Field(default=1, description="keep every n-th point")
        runs: list[RunSpec] = Field(min_length=1, max_length=limits.max_runs)

    class SchedulePreview(Strict):
        """A schedule to evaluate at steps 0 .. steps - 1."""

        name: ScheduleName = Field(description="schedule name; constant for a fixed lr")
        lr: LearningRate = Field(default=0.1, description="base lr")
        steps: Steps = Field(default=500)
        options: Options

    return {"ScheduleSpec": ScheduleSpec, "RunSpec": RunSpec, "RunRequest": RunRequest,
            "SchedulePreview": SchedulePreview}
