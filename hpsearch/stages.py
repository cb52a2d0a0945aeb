"""Stage preparation: region -> space -> points -> enqueued slots, exactly once.

Deciding *what* to run (this module) is kept apart from running it (``worker``). Points are
a function of (search seed, stage index, previous stage's results) only, never of how many
workers there are or when they arrive.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpsearch import store as st
from hpsearch.errors import UserError
from hpsearch.points import continue_points, derive_seed, make_points, promoted_points
from hpsearch.records import TrialRecord
from hpsearch.regions import Region, narrow
from hpsearch.space import SearchSpace
from hpsearch.spec import StageSpec, StudySpec, spec_differences
from hpsearch.store import NewSlot, SearchStore, Stage, StopEarly, StoreLease
from hpsearch.store.slots import LeaseLost

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)


class SpecMismatch(UserError):
    """A different spec is stored under the same search name."""


#: Spec keys a relaunch may change: how the search runs, not what it searches.
RELAUNCH_KEYS = ("max_failures",)


@dataclass(frozen=True)
class StagePlan:
    """What a stage will evaluate: its space, the region it came from, its points."""

    space: SearchSpace
    region: Region | None
    points: list[dict[str, Any]]
    seed: int
    promoted: int = 0  # the first points: the previous stage's best trials again


def stage_seed(spec: StudySpec, index: int) -> int:
    return derive_seed(spec.seed, index)


def trial_seed(spec: StudySpec, index: int, slot: int) -> int:
    return derive_seed(spec.seed, index, slot)


def plan_stage(
    spec: StudySpec,
    index: int,
    previous_space: SearchSpace | None = None,
    previous: list[TrialRecord] | None = None,
) -> StagePlan:
    """Pure: the plan of stage ``index`` given the previous stage's space and results.

    With ``promote = N`` the first N points are the previous stage's N best trials, put
    inside this stage's space (``points.promoted_points``); the sampler's points fill the
    remaining slots (for TPE: empty slots, so TPE sees the promoted runs' results).
    """
    stage = spec.stages[index]
    region = None
    space = spec.space
    promoted: list[dict[str, Any]] = []
    if index > 0:
        assert previous_space is not None and previous is not None
        region = narrow(
            previous_space,
            previous,
            keep=stage.keep,
            margin=stage.margin,
            direction=spec.direction,
        )
        space = region.space
        promoted = promoted_points(space, previous, stage.promote, spec.direction)
    seed = stage_seed(spec, index)
    left = stage.trials - len(promoted)
    rest = make_points(stage.sampler, space, left, seed) if left else []
    return StagePlan(space, region, promoted + rest, seed, len(promoted))


def _sampler(spec: StudySpec, index: int) -> optuna.samplers.BaseSampler:
    """The sampler that fills slots at run time: only TPE ever does; for the others the
    slots carry their params and the sampler is never consulted.

    TPE's random start-up trials come on top of the promoted ones, which cluster around
    the previous stage's winners: TPE then models from both (measured on 100 seeds of the
    benchmark problems: a little better than counting promoted runs as start-up)."""
    import optuna

    seed = stage_seed(spec, index)
    stage = spec.stages[index]
    if stage.sampler == "tpe":
        startup = stage.promote + max(3, len(spec.space) + 1)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    return optuna.samplers.RandomSampler(seed=seed)


def open_stage(store: SearchStore, spec: StudySpec, index: int) -> Stage:
    """Create or load stage ``index``'s study, with the sampler its slots need."""
    return store.open_stage(spec, index, _sampler(spec, index))


def register_search(store: SearchStore, spec: StudySpec, *, baseline: str | None = None) -> bool:
    """Store the spec on the first stage study. Returns True if the search is new.

    Launching the same file again resumes; a different spec under the same name is
    refused with the differences listed (``create_study(load_if_exists=True)`` would
    silently keep the stored direction, and the stored points would no longer match).
    """
    stored = store.register(spec, baseline=baseline)
    if stored is None:
        return True
    diffs = spec_differences(_identity(stored["spec"]), _identity(spec.to_dict()))
    if diffs:
        raise SpecMismatch(
            f"search {spec.name!r} already exists in this storage with a different spec:\n  "
            + "\n  ".join(diffs)
            + "\nrename the search (name = ...) or use another --storage to start afresh"
        )
    return False


def _identity(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k not in RELAUNCH_KEYS}


def previous_results(
    store: SearchStore, spec: StudySpec, index: int
) -> tuple[SearchSpace, list[TrialRecord]]:
    """The space and records of the stage before ``index``, read from the database."""
    prev = open_stage(store, spec, index - 1)
    space = SearchSpace.from_dict(store.stage_attrs(prev)[st.ATTR_SPACE])
    return space, store.records(prev, spec.stages[index - 1].name)


def prepare_stage(
    store: SearchStore,
    spec: StudySpec,
    index: int,
    *,
    owner: str,
    lease_s: float = 60.0,
    poll_s: float = 0.5,
) -> Stage:
    """Make sure stage ``index`` has exactly ``trials`` slots; return it.

    Exactly one worker prepares (it holds a lease); the others wait for ``ready``. Filling
    is idempotent (slots are numbered, and the store never inserts a number twice) and
    fenced (every write renews the lease in its own transaction), so a preparer killed or
    frozen at any instruction is simply taken over when its lease expires, and the new
    one enqueues only the missing slots.
    """
    stage = open_stage(store, spec, index)
    wait = poll_s
    while True:
        if store.stage_attrs(stage).get(st.ATTR_READY):
            return stage
        lease = store.lease(stage.name, duration_s=lease_s, owner=owner)
        if lease.acquire():
            try:
                _fill(store, spec, index, stage, lease)
            except LeaseLost:
                log.warning("lost the lease on %s while preparing it; waiting", stage.name)
                continue
            finally:
                if lease.held:
                    lease.release()
            return stage
        log.info("waiting for another worker to prepare %s", stage.name)
        time.sleep(wait)
        wait = min(wait * 1.5, 5.0)


def stage_attrs(spec: StudySpec, index: int, plan: StagePlan) -> dict[str, Any]:
    """The user attrs that describe a prepared stage: what reports, notes and the
    dashboard read back (``ATTR_READY`` is written last, once its slots are queued)."""
    stage = spec.stages[index]
    return {
        st.ATTR_STAGE: stage.name,
        st.ATTR_STAGE_INDEX: index,
        st.ATTR_EPOCHS: stage.epochs,
        st.ATTR_SAMPLER: stage.sampler,
        st.ATTR_SEED: plan.seed,
        st.ATTR_SPACE: plan.space.to_dict(),
        st.ATTR_REGION: plan.region.to_dict() if plan.region else None,
        st.ATTR_POINTS: len(plan.points),
        st.ATTR_PROMOTED: plan.promoted,
    }


def _fill(
    store: SearchStore, spec: StudySpec, index: int, stage: Stage, lease: StoreLease
) -> None:
    if index == 0:
        plan = plan_stage(spec, 0)
    else:
        plan = plan_stage(spec, index, *previous_results(store, spec, index))
    store.write_stage_attrs(stage, stage_attrs(spec, index, plan), lease)
    store.set_metric(stage, spec.metric)
    added = store.enqueue(stage, plan.space, _slots(spec, index, 0, plan.points), lease)
    store.write_stage_attrs(stage, {st.ATTR_READY: True}, lease)
    log.info("prepared %s: %d slots (%d added now)", stage.name, len(plan.points), added)


def _slots(spec: StudySpec, index: int, first: int, points: list[dict[str, Any]]) -> list[NewSlot]:
    """Slots ``first``, ``first + 1``, ... of stage ``index`` with these points."""
    stage = spec.stages[index]
    return [
        NewSlot(
            slot,
            point,
            {
                "slot": slot,
                "stage": stage.name,
                "epochs": stage.epochs,
                "seed": trial_seed(spec, index, slot),
            },
        )
        for slot, point in enumerate(points, start=first)
    ]


def pruner(stage: StageSpec) -> optuna.pruners.BasePruner:
    """Optuna's pruner for the stage's ``stop_early``, used as is through ``prune(study,
    trial)`` after each reported epoch (``store.Slot.report``).

    - ``asha``: ``SuccessiveHalvingPruner`` with rungs at ``min_epochs * factor**k``
      epochs; a run goes on past a rung only in the top ``1/factor`` of the values every
      run reported there so far. That is ASHA (Li et al. 2020): no rung waits for a
      cohort, so no worker idles. Not Optuna's ``HyperbandPruner``: its brackets are
      hashed from the study name and the trial number, and a stage's budget already plays
      the role of one bracket.
    - ``median``: ``MedianPruner``, from ``min_epochs`` on, once 5 runs completed.
    """
    import optuna

    if stage.stop_early == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=stage.min_epochs,
            reduction_factor=stage.reduction_factor,
            min_early_stopping_rate=0,
        )
    return optuna.pruners.MedianPruner(n_warmup_steps=stage.min_epochs)


def stop_early(spec: StudySpec, attrs: dict[str, Any]) -> StopEarly | None:
    """How the prepared stage with these attrs stops runs early, or None if it does not.

    Its budget is ``trials * epochs`` epochs. The slots the unspent epochs buy continue
    the stage's point sequence (``points.continue_points``, from the stored space and
    seed, after the promoted runs): the same slots whichever worker appends them, and
    with one worker the same search on every run. TPE's are empty, filled at run time.
    """
    index = attrs[st.ATTR_STAGE_INDEX]
    stage = spec.stages[index]
    if stage.stop_early is None:
        return None
    space = SearchSpace.from_dict(attrs[st.ATTR_SPACE])
    seed = attrs[st.ATTR_SEED]
    promoted = attrs.get(st.ATTR_PROMOTED, min(stage.promote, attrs[st.ATTR_POINTS]))

    def more(first: int, n: int) -> list[NewSlot]:
        points = continue_points(stage.sampler, space, first - promoted, n, seed)
        return _slots(spec, index, first, points)

    return StopEarly(pruner(stage), stage.budget, stage.epochs, space, more)
