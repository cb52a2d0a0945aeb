"""The store's words: where a search keeps what (study attr names), and the handles and
values the store hands out and takes in (a stage, a slot to queue, a stage's early-stopping
rule, a note's owner)."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from hpsearch.core.space import SearchSpace

# Study user attrs (the dashboard shows them; keep the names plain).
ATTR_SPEC = "spec"  # on the first stage study only: the whole search
ATTR_HISTORY = "spec_history"  # beside it: every spec it has been, with times and changes
ATTR_STAGE = "stage"
ATTR_STAGE_INDEX = "stage_index"
ATTR_EPOCHS = "epochs"
ATTR_SAMPLER = "sampler"
ATTR_SEED = "seed"
ATTR_SPACE = "space"
ATTR_REGION = "region"
ATTR_POINTS = "n_points"
ATTR_PROMOTED = "n_promoted"  # the first slots: the previous stage's best trials again
ATTR_READY = "ready"
ATTR_BASELINE = "baseline"  # on a compare baseline's study: "grid" or "random"
ATTR_STOPPED = "stopped"  # on a stage study whose failures stopped the search (failfast)
#: Study system attrs: optuna-dashboard's note version, and hpsearch's mark of its own.
NOTE_VERSION = "dashboard:note_ver"
#: optuna-dashboard's note body and figures (its ``_note`` and ``_custom_plot_data``,
#: 0.21): chunks of at most ``NOTE_CHUNK`` characters under these prefixes, numbered.
NOTE_PREFIX = "dashboard:note_str:"
PLOT_DATA_PREFIX = "dashboard:plot_data:"
NOTE_CHUNK = 2045
ATTR_NOTE_MARK = "hpsearch:note"


def stage_study_name(search: str, stage: str) -> str:
    return f"{search}/{stage}"


def now_iso() -> str:
    """Now, as the spec's history stores times: ISO 8601 in UTC."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class StageRef:
    """A stage study by name and id: what reading it needs (a reader hands these out,
    having no Optuna study to put in them)."""

    name: str  # the study name, NAME/STAGE
    study_id: int


@dataclass(frozen=True)
class Stage(StageRef):
    """A stage study, as the store hands it out: the worker and the preparer name a stage
    by this handle and never see the Optuna study inside."""

    study: optuna.Study = field(repr=False, compare=False)


@dataclass(frozen=True)
class NewSlot:
    """A slot to queue (:meth:`SearchStore.enqueue`, or appended by early stopping): its
    number in the stage, its point (empty: the sampler fills it at run time) and the attrs
    that identify it. The stage's space gives the point's distributions when it is stored."""

    slot: int
    point: dict[str, Any]
    user_attrs: dict[str, Any]


@dataclass(frozen=True)
class StopEarly:
    """How a stage stops runs early: Optuna's pruner, which decides after reported epochs,
    and the stage's epoch budget with the slots its unspent epochs buy.

    ``more(first, n)`` is the stage's next ``n`` slots from slot number ``first`` on, a
    pure function (``engine.stages.stop_early``), so whichever worker appends them, they
    are the same; ``space`` gives their points' distributions. ``decides_at``: the epochs
    after which the pruner can stop a run (its rungs, ``engine.stages.decision_epochs``),
    the only ones it is asked at; None: it is asked after every epoch.
    """

    pruner: optuna.pruners.BasePruner = field(repr=False)
    budget: int
    epochs: int
    space: SearchSpace
    more: Callable[[int, int], list[NewSlot]] = field(repr=False)
    decides_at: tuple[int, ...] | None = None


@dataclass(frozen=True)
class NoteState:
    """A stage note's version (optuna-dashboard counts one per save, a person's in the
    dashboard included; 0: no note) and hpsearch's mark of the version it wrote last, with
    the stage's trial count it was drawn from (None: hpsearch never wrote one)."""

    version: int
    ours: int | None
    trials: int | None

    @property
    def by_a_person(self) -> bool:
        """A note that hpsearch did not write, or edited since: never overwritten."""
        return self.version > 0 and self.version != self.ours
