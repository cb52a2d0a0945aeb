"""One stage of a search as a study file lists it, or as the default plan makes it.

Below both ``spec`` (which parses [[stage]] tables into it) and ``plan`` (which builds the
stages from ``budget``), so that neither imports the other's module to get it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hpsearch.core.space import SearchSpace

#: Top fraction of the previous stage that defines the next region: 1 in 4 is wide enough
#: to be robust to noisy short runs and narrow enough to cut a log range by ~10x.
DEFAULT_KEEP = 0.25
#: Widening of the kept span on each side, as a fraction of the span.
DEFAULT_MARGIN = 0.25
#: Early stopping inside a stage (``stop_early``): asynchronous successive halving, or the
#: median rule. Either makes the stage's budget ``trials * epochs`` epochs.
STOP_RULES = ("asha", "median")
DEFAULT_REDUCTION_FACTOR = 3
DEFAULT_MIN_EPOCHS = 1


@dataclass(frozen=True)
class StageSpec:
    """One pass of the search: ``trials`` runs of ``epochs`` epochs drawn by ``sampler``."""

    name: str
    trials: int
    epochs: int
    sampler: str = "random"
    keep: float = DEFAULT_KEEP
    margin: float = DEFAULT_MARGIN
    #: The first ``promote`` slots re-run the previous stage's best trials at this stage's
    #: epochs (as successive halving promotes), clipped into this stage's box; the sampler
    #: fills the others. 0: no promotion.
    promote: int = 0
    #: Ranges this stage sets itself (``[stage.space.lr]``), in place of the ones narrowing
    #: gives (or, for the first stage, of ``[space]``'s): how a user acts on an edge warning.
    space: SearchSpace | None = None
    #: Stop runs that are clearly losing ("asha" or "median", ``hpsearch.engine.stages.pruner``):
    #: the stage's budget is then ``trials * epochs`` epochs, and the epochs a stopped run
    #: did not spend fund more runs. None: every run goes to ``epochs``.
    stop_early: str | None = None
    reduction_factor: int = DEFAULT_REDUCTION_FACTOR  # asha: keep 1 in this many per rung
    min_epochs: int = DEFAULT_MIN_EPOCHS  # no run is stopped before this many epochs
    #: Seconds a trial of this stage may run (None: the study's ``trial_timeout``).
    trial_timeout: float | None = None

    @property
    def budget(self) -> int:
        """The stage's epochs in all: ``trials`` runs' worth, however many runs that buys."""
        return self.trials * self.epochs
