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

from hpsearch import storage as st
from hpsearch.coordination import Lease, LeaseLost
from hpsearch.errors import UserError
from hpsearch.points import derive_seed, make_points, promoted_points
from hpsearch.records import TrialRecord
from hpsearch.regions import Region, narrow
from hpsearch.space import SearchSpace
from hpsearch.spec import StudySpec, spec_differences

if TYPE_CHECKING:
    import optuna
    from optuna.storages import RDBStorage

log = logging.getLogger(__name__)


class SpecMismatch(UserError):
    """A different spec is stored under the same search name."""


@dataclass(frozen=True)
class StagePlan:
    """What a stage will evaluate: its space, the region it came from, its points."""

    space: SearchSpace
    region: Region | None
    points: list[dict[str, Any]]
    seed: int


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
    return StagePlan(space, region, promoted + rest, seed)


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


def open_stage_study(storage: RDBStorage, spec: StudySpec, index: int) -> optuna.Study:
    """Create or load stage ``index``'s study, with the sampler its slots need."""
    import optuna

    name = st.stage_study_name(spec.name, spec.stages[index].name)
    return st.with_retries(
        lambda: optuna.create_study(
            storage=storage,
            study_name=name,
            direction=spec.direction,
            sampler=_sampler(spec, index),
            load_if_exists=True,
        ),
        what=f"open study {name}",
    )


def register_search(storage: RDBStorage, spec: StudySpec) -> bool:
    """Store the spec on the first stage study. Returns True if the search is new.

    Launching the same file again resumes; a different spec under the same name is
    refused with the differences listed (``create_study(load_if_exists=True)`` would
    silently keep the stored direction, and the stored points would no longer match).
    """
    study = open_stage_study(storage, spec, 0)
    stored = study.user_attrs.get(st.ATTR_SPEC)
    if stored is None:
        study.set_user_attr(st.ATTR_SPEC, {"spec": spec.to_dict(), "base_dir": spec.base_dir})
        return True
    diffs = spec_differences(stored["spec"], spec.to_dict())
    if diffs:
        raise SpecMismatch(
            f"search {spec.name!r} already exists in this storage with a different spec:\n  "
            + "\n  ".join(diffs)
            + "\nrename the search (name = ...) or use another --storage to start afresh"
        )
    return False


def previous_results(
    storage: RDBStorage, spec: StudySpec, index: int
) -> tuple[SearchSpace, list[TrialRecord]]:
    """The space and records of the stage before ``index``, read from the database."""
    prev = open_stage_study(storage, spec, index - 1)
    space = SearchSpace.from_dict(prev.user_attrs[st.ATTR_SPACE])
    return space, st.study_records(prev, spec.stages[index - 1].name)


def prepare_stage(
    storage: RDBStorage,
    spec: StudySpec,
    index: int,
    *,
    owner: str,
    lease_s: float = 60.0,
    poll_s: float = 0.5,
) -> optuna.Study:
    """Make sure stage ``index`` has exactly ``trials`` slots; return its study.

    Exactly one worker prepares (it holds a lease); the others wait for ``ready``. Filling
    is idempotent (slots are numbered), so a preparer killed at any instruction is simply
    taken over when its lease expires, and the new one enqueues only the missing slots.
    """
    study = open_stage_study(storage, spec, index)
    name = study.study_name
    wait = poll_s
    while True:
        attrs = st.with_retries(lambda: study.user_attrs, what="read stage attrs")
        if attrs.get(st.ATTR_READY):
            return study
        lease = Lease(storage.engine, name, duration_s=lease_s, owner=owner)
        if st.with_retries(lease.acquire, what="acquire lease"):
            try:
                _fill(storage, spec, index, study, lease)
            except LeaseLost:
                log.warning("lost the lease on %s while preparing it; waiting", name)
                continue
            finally:
                if lease.token is not None:
                    st.with_retries(lease.release, what="release lease")
            return study
        log.info("waiting for another worker to prepare %s", name)
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
    }


def _fill(
    storage: RDBStorage, spec: StudySpec, index: int, study: optuna.Study, lease: Lease
) -> None:
    stage = spec.stages[index]
    if index == 0:
        plan = plan_stage(spec, 0)
    else:
        plan = plan_stage(spec, index, *previous_results(storage, spec, index))
    for key, value in stage_attrs(spec, index, plan).items():
        st.with_retries(lambda k=key, v=value: study.set_user_attr(k, v), what="write attrs")
    st.with_retries(lambda: study.set_metric_names([spec.metric]), what="set metric name")
    existing = {
        t.user_attrs.get("slot")
        for t in st.with_retries(lambda: study.get_trials(deepcopy=False), what="read slots")
    }
    space = plan.space
    for slot, point in enumerate(plan.points):
        if slot in existing:
            continue
        lease.check()  # fencing: a preparer that froze past its lease stops here
        user_attrs = {
            "slot": slot,
            "stage": stage.name,
            "epochs": stage.epochs,
            "seed": trial_seed(spec, index, slot),
        }
        st.with_retries(lambda p=point, u=user_attrs: _enqueue(study, space, p, u), what="enqueue")
    lease.check()
    st.with_retries(lambda: study.set_user_attr(st.ATTR_READY, True), what="mark ready")
    log.info("prepared %s: %d slots", study.study_name, len(plan.points))


def _enqueue(
    study: optuna.Study, space: SearchSpace, point: dict[str, Any], user_attrs: dict[str, Any]
) -> None:
    """One WAITING slot. A fixed point is stored as the trial's params right away (as
    Optuna's own retry callback stores a re-queued trial), so that the worker that claims
    it needs no sampler round trips; an empty point (TPE) is left for the sampler."""
    import optuna

    if not point:
        study.enqueue_trial({}, user_attrs=user_attrs)
        return
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING,
            params=point,
            distributions={name: st.to_distribution(space[name]) for name in point},
            user_attrs=user_attrs,
        )
    )
