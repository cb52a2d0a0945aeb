"""Stage preparation: region -> space -> points -> enqueued slots, exactly once.

Deciding *what* to run (this module) is kept apart from running it (``worker``). Points are
a function of (search seed, stage index, previous stage's results) only, never of how many
workers there are or when they arrive.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpsearch import store as st
from hpsearch.core import prior
from hpsearch.core.edits import Change, classify, conflict, refusal, resolve_plan
from hpsearch.core.errors import UserError
from hpsearch.core.plan import rungs
from hpsearch.core.points import continue_points, derive_seed, make_points, promoted_points
from hpsearch.core.records import TrialRecord
from hpsearch.core.regions import Region, narrow
from hpsearch.core.space import SearchSpace
from hpsearch.core.spec import StageSpec, StudySpec
from hpsearch.objectives.catalog import spec_from_dict
from hpsearch.store import NewSlot, Stage, StopEarly

if TYPE_CHECKING:
    import optuna

    from hpsearch.engine.fine import Evidence
    from hpsearch.store import SearchReader, SearchStore, StoreLease

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
    remaining slots (for TPE: empty slots, so TPE sees the promoted runs' results). A
    stage's own ranges (``[stage.space.NAME]``) replace what narrowing gave for those
    parameters, in the space and in the region the stage records.
    """
    stage = spec.stages[index]
    region = None
    space = spec.space.replace(stage.space or ())
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
        box = region.space.replace(stage.space or ())
        region = _searched(region, box)
        # A model-based stage samples over the hull, the box its prior (core.prior); the
        # ranges a stage sets itself stay walls.
        if prior.searches_hull(stage.sampler, index):
            space = prior.hull(previous_space, region.space).replace(stage.space or ())
        else:
            space = box
        promoted = promoted_points(space, previous, stage.promote, spec.direction)
    seed = stage_seed(spec, index)
    left = stage.trials - len(promoted)
    rest = make_points(stage.sampler, space, left, seed) if left else []
    return StagePlan(space, region, promoted + rest, seed, len(promoted))


def _searched(region: Region, space: SearchSpace) -> Region:
    """``region`` ending at ``space``: what the stage searched, its own ranges included."""
    params = tuple(dataclasses.replace(p, after=space[p.name]) for p in region.params)
    return dataclasses.replace(region, space=space, params=params)


def _sampler(
    spec: StudySpec, index: int, store: SearchStore | None = None
) -> optuna.samplers.BaseSampler:
    """The sampler that fills slots at run time: only TPE ever does; for the others the
    slots carry their params and the sampler is never consulted.

    TPE's random start-up trials come on top of the promoted ones, which cluster around
    the previous stage's winners: TPE then models from both (measured on 100 seeds of the
    benchmark problems: a little better than counting promoted runs as start-up). A TPE
    stage after the first models the earlier stages' trials too (``engine.fine``), so it
    has no random start at all: those trials are its start.

    Both draw from a random stream per slot (``engine.fine``): the workers' samplers are
    seeded alike, and four of them proposing at once proposed one point."""
    import optuna

    seed = stage_seed(spec, index)
    stage = spec.stages[index]
    if stage.sampler == "tpe":
        from hpsearch.engine.fine import FineSampler, SlotSeeded

        startup = stage.promote + max(3, len(spec.space) + 1)
        if store is not None and prior.models_earlier(stage.sampler, index):
            return FineSampler(lambda: evidence(store, spec, index), seed=seed, startup=startup)
        return SlotSeeded(
            optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup), seed=seed
        )
    return optuna.samplers.RandomSampler(seed=seed)


def open_stage(store: SearchStore, spec: StudySpec, index: int) -> Stage:
    """Create or load stage ``index``'s study, with the sampler its slots need."""
    return store.open_stage(spec, index, _sampler(spec, index, store))


def evidence(store: SearchStore, spec: StudySpec, index: int) -> Evidence:
    """What stage ``index``'s model-based sampler learns from, read from storage: its
    stored space and box (the region it was handed) and every trial of the stages before
    it, in stage and trial-number order (the same on every worker)."""
    from hpsearch.engine.fine import Evidence

    stage = spec.stages[index]
    own = store.find_stage(spec.name, stage.name)
    assert own is not None, "a stage's sampler runs only once its study exists"
    attrs = store.stage_attrs(own)
    region = attrs.get(st.ATTR_REGION)
    earlier: list[TrialRecord] = []
    for before in spec.stages[:index]:
        found = store.find_stage(spec.name, before.name)
        if found is not None:
            earlier += sorted(store.records(found, before.name), key=lambda r: r.number)
    return Evidence(
        space=SearchSpace.from_dict(attrs[st.ATTR_SPACE]),
        box=Region.from_dict(region).space if region else None,
        epochs=stage.epochs,
        earlier=tuple(earlier),
    )


@dataclass(frozen=True)
class Registration:
    """What launching a study file did to the stored search."""

    new: bool
    spec: StudySpec  # the search as stored now: what its workers run
    changes: list[str]  # one line per edit of the study file applied
    notes: list[str]  # what the user may want to do about them


#: How long a relaunch waits for a stage that a worker is preparing, before it gives up.
EDIT_WAIT_S = 120.0
EDIT_LEASE_S = 60.0


def register_search(
    store: SearchStore, spec: StudySpec, *, baseline: str | None = None
) -> Registration:
    """Store the spec on the first stage study, or apply the file's edits to the stored one.

    Launching the same file again resumes. An edited file is compared with the stored spec
    (``edits.classify``): compatible edits are applied and stored with the spec's history,
    the others refused with the differences and the ways out (``create_study(
    load_if_exists=True)`` would silently keep the stored direction, and the stored points
    would no longer match).
    """
    if baseline is None:
        _check_first_stage(store, spec, store.find_spec(spec.name))
    stored = store.register(spec, baseline=baseline)
    if stored is None:
        return Registration(True, spec, [], [])
    return _apply_edits(store, spec, stored)


def preview_search(store: SearchReader, spec: StudySpec) -> Registration:
    """What :func:`register_search` would do with ``spec``, reading only (``launch
    --dry-run``): new, or the spec a relaunch would store (the stored plan plus the
    file's edits), the lines of the edits it would apply and the notes; SpecMismatch
    when it would refuse, with the same text. Writes nothing."""
    found = store.find_spec(spec.name)
    if found is None:
        return Registration(True, spec, [], [])
    _check_first_stage(store, spec, found)
    value = store.spec_value(found)
    stored, edited, ready, changes = _compare(store, spec, value)
    if not changes:
        return Registration(False, stored, [], [])
    notes = [
        note
        for i, (old, new) in enumerate(zip(stored.stages, edited.stages, strict=False))
        if old.name in ready and new.trials > old.trials
        for note in _regrow_note(edited, i, ready)
    ]
    return Registration(False, edited, [c.line for c in changes], notes)


def _check_first_stage(store: SearchReader, spec: StudySpec, found: StudySpec | None) -> None:
    """Refuse a file whose first stage is not the stored one's (the search is stored under
    that stage's study, so the store would not find it to compare)."""
    if found is not None and found.stages[0].name != spec.stages[0].name:
        ready = store.ready_stages(spec.name, _stage_names(found, spec))
        raise SpecMismatch(refusal(spec.name, classify(found.to_dict(), spec.to_dict(), ready)))


def _compare(
    store: SearchReader, file: StudySpec, value: dict[str, Any], *, check: bool = True
) -> tuple[StudySpec, StudySpec, set[str], list[Change]]:
    """The stored spec, the spec the file makes of it, the prepared stages and the
    changes between the two; SpecMismatch when one of them cannot be applied (unless not
    ``check``: then the caller judges them)."""
    stored = spec_from_dict(value["spec"], base_dir=value.get("base_dir", "."))
    ready = store.ready_stages(file.name, _stage_names(stored, file))
    spec = resolve_plan(stored, file, sum(s.name in ready for s in stored.stages))
    spec = dataclasses.replace(spec, base_dir=stored.base_dir)
    changes = classify(stored.to_dict(), spec.to_dict(), ready)
    if check and not all(c.compatible for c in changes):
        raise SpecMismatch(refusal(file.name, changes))
    return stored, spec, ready, changes


def _stage_names(*specs: StudySpec) -> list[str]:
    return list(dict.fromkeys(s.name for spec in specs for s in spec.stages))


def _apply_edits(store: SearchStore, file: StudySpec, value: dict[str, Any]) -> Registration:
    """Compare the file with the stored spec ``value`` and apply it if every edit is
    compatible.

    The spec is swapped atomically (a compare-and-swap on the stored value: of two launches
    editing at once, one applies and the other compares again) under the leases of every
    stage not prepared yet, so that no worker prepares one from the old spec meanwhile: an
    edit waits for a preparing worker, and then compares with that stage prepared. Stages
    given more trials are extended under their leases too.

    A stored spec that changed since this launch first read it was edited by another
    launch. This file's edits are applied on top only where they touch none of the fields
    that edit changed; else the launch is refused (:func:`hpsearch.core.edits.conflict`):
    the file still holds the old values there, and applying it would undo that edit.
    """
    from hpsearch.store import LeaseLost, worker_id  # the writers' rows: not for a preview

    owner, deadline, wait = worker_id(), time.monotonic() + EDIT_WAIT_S, 0.2
    base = value["spec"]  # what this launch read first
    mine: list[str] = []  # and its edits of that
    while True:
        edited = value["spec"] != base
        stored, spec, ready, changes = _compare(store, file, value, check=not edited)
        if edited:
            theirs = classify(base, value["spec"], ())
            if {c.field for c in theirs} & {c.field for c in changes}:
                raise SpecMismatch(conflict(file.name, [c.line for c in theirs], mine))
            if not all(c.compatible for c in changes):
                raise SpecMismatch(refusal(file.name, changes))
        if not changes:
            return Registration(False, stored, [], [])
        mine = mine or [c.line for c in changes]
        names = _stage_names(stored, file)
        grown = [
            i
            for i, (old, new) in enumerate(zip(stored.stages, spec.stages, strict=False))
            if old.name in ready and new.trials > old.trials
        ]
        locked = [n for n in names if n not in ready] + [spec.stages[i].name for i in grown]
        held = _hold(store, file.name, locked, owner)
        try:
            if held is not None and store.ready_stages(file.name, names) == ready:
                lines = [c.line for c in changes]
                new_value = {**value, "spec": spec.to_dict(), "at": st.now_iso()}
                if store.swap_spec(spec, value, new_value, lines, list(held.values())):
                    notes = [note for i in grown for note in _grow(store, spec, i, held, ready)]
                    return Registration(False, spec, lines, notes)
        except LeaseLost:
            log.warning("lost a stage's lease while editing %s; comparing again", file.name)
        finally:
            for lease in (held or {}).values():
                if lease.held:
                    lease.release()
        if held is None:
            if time.monotonic() > deadline:
                raise UserError(
                    f"search {file.name!r}: a worker has been preparing one of its stages for "
                    f"over {EDIT_WAIT_S:g} s; launch again when it is done"
                )
            time.sleep(wait)
            wait = min(wait * 1.5, 5.0)
        value = store.spec_value(file)


def _hold(
    store: SearchStore, search: str, stages: list[str], owner: str
) -> dict[str, StoreLease] | None:
    """The leases of all these stages of ``search``, or None (and none held) when a worker
    holds one of them: it is preparing that stage."""
    held: dict[str, StoreLease] = {}
    for name in stages:
        lease = store.lease(
            st.stage_study_name(search, name), duration_s=EDIT_LEASE_S, owner=owner
        )
        if not lease.acquire():
            for other in held.values():
                other.release()
            return None
        held[name] = lease
    return held


def _grow(
    store: SearchStore,
    spec: StudySpec,
    index: int,
    held: dict[str, StoreLease],
    ready: set[str],
) -> list[str]:
    """Extend prepared stage ``index`` to its new trials; a note when the next stage was
    prepared already, from this stage's results before the edit."""
    stage = open_stage(store, spec, index)
    _extend(store, spec, index, stage, held[spec.stages[index].name])
    return _regrow_note(spec, index, ready)


def _regrow_note(spec: StudySpec, index: int, ready: set[str]) -> list[str]:
    """A note when stage ``index`` grows after the next stage was prepared from it."""
    after = spec.stages[index + 1].name if index + 1 < len(spec.stages) else None
    if after is None or after not in ready:
        return []
    name = spec.stages[index].name
    return [
        f"stage {after} was prepared from stage {name}'s results before this edit; to "
        f"narrow from all {spec.stages[index].trials} once they ran, re-prepare it: "
        f"hpsearch retry {spec.name} --from-stage {after}"
    ]


def previous_results(
    store: SearchStore, spec: StudySpec, index: int
) -> tuple[SearchSpace, list[TrialRecord]]:
    """The space and records of the stage before ``index``, read from the database."""
    prev = open_stage(store, spec, index - 1)
    space = SearchSpace.from_dict(store.stage_attrs(prev)[st.ATTR_SPACE])
    return space, store.records(prev, spec.stages[index - 1].name)


#: A worker waiting for another to prepare a stage polls no slower than this.
MAX_PREPARE_POLL_S = 1.0


def prepare_stage(
    store: SearchStore,
    spec: StudySpec,
    index: int,
    *,
    owner: str,
    lease_s: float = 60.0,
    poll_s: float = 0.2,
    stop: threading.Event | None = None,
) -> Stage | None:
    """Make sure stage ``index`` has exactly ``trials`` slots; return it, or None when the
    search changed under the caller: an edit re-opened the stage before (it got more
    trials) or changed this one. The caller then reads the spec again and goes back.
    None too once ``stop`` is set (Ctrl-C, SIGTERM): a stage being filled is left without
    its ``ready`` mark (the slots queued so far stay; the next preparer adds the rest).

    Exactly one worker prepares (it holds a lease); the others wait for ``ready``. Filling
    is idempotent (slots are numbered, and the store never inserts a number twice) and
    fenced (every write renews the lease in its own transaction), so a preparer killed or
    frozen at any instruction is simply taken over when its lease expires, and the new
    one enqueues only the missing slots. The spec is read again under the lease (an edit
    changes a stage not prepared yet only while holding its lease), and a prepared stage
    with fewer slots than its trials (an edit that stopped before extending it) is
    extended here.

    The others poll from ``poll_s`` on, up to ``MAX_PREPARE_POLL_S``: every worker but the
    preparer waits here at each stage's start, so the time a poll oversleeps the preparer
    is lost once per waiting worker (two reads and a lease attempt per poll).
    """
    from hpsearch.store import LeaseLost

    stage = open_stage(store, spec, index)
    wait = poll_s
    while True:
        attrs = store.stage_attrs(stage)
        ready = bool(attrs.get(st.ATTR_READY))
        if ready and attrs.get(st.ATTR_POINTS, 0) >= spec.stages[index].trials:
            return stage
        lease = store.lease(stage.name, duration_s=lease_s, owner=owner)
        if lease.acquire():
            try:
                current = store.current_spec(spec)
                if _changed(store, spec, current, index, ready):
                    return None
                if ready:
                    _extend(store, current, index, stage, lease)
                elif not _fill(store, current, index, stage, lease, stop):
                    return None
            except LeaseLost:
                log.warning("lost the lease on %s while preparing it; waiting", stage.name)
                continue
            finally:
                if lease.held:
                    lease.release()
            return stage
        log.info("waiting for another worker to prepare %s", stage.name)
        if stop is not None and stop.wait(wait):
            return None
        if stop is None:
            time.sleep(wait)
        wait = min(wait * 1.5, MAX_PREPARE_POLL_S)


def _changed(
    store: SearchStore, spec: StudySpec, current: StudySpec, index: int, ready: bool
) -> bool:
    """Whether stage ``index`` of ``spec`` is not the stored one any more, or (not yet
    prepared) the stage before it has slots open again."""
    if index >= len(current.stages) or current.stages[index] != spec.stages[index]:
        return True
    return not ready and index > 0 and store.open_count(open_stage(store, current, index - 1)) > 0


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


#: Slots built at once while a stage is filled: each costs a trial seed (about 45 us), so
#: a 200,000-slot stage takes seconds to build, and a stop must not wait for all of it.
SLOTS_AT_ONCE = 10_000


def _fill(
    store: SearchStore,
    spec: StudySpec,
    index: int,
    stage: Stage,
    lease: StoreLease,
    stop: threading.Event | None,
) -> bool:
    """Plan the stage, queue its slots and mark it ready; False (not marked) if ``stop``
    was set before every slot was queued."""
    if index == 0:
        plan = plan_stage(spec, 0)
    else:
        plan = plan_stage(spec, index, *previous_results(store, spec, index))
    if stop is not None and stop.is_set():
        return False
    store.write_stage_attrs(stage, stage_attrs(spec, index, plan), lease)
    store.set_metric(stage, spec.metric)
    slots: list[NewSlot] = []
    for first in range(0, len(plan.points), SLOTS_AT_ONCE):  # a stop is heard in between
        if stop is not None and stop.is_set():
            log.info("stopped preparing %s before queueing its slots", stage.name)
            return False
        slots += _slots(spec, index, first, plan.points[first : first + SLOTS_AT_ONCE])
    added = store.enqueue(stage, plan.space, slots, lease, stop)
    if stop is not None and stop.is_set():
        log.info(
            "stopped preparing %s (%d slots queued, not ready); launch again to finish",
            stage.name,
            added,
        )
        return False
    store.write_stage_attrs(stage, {st.ATTR_READY: True}, lease)
    log.info("prepared %s: %d slots (%d added now)", stage.name, len(plan.points), added)
    return True


def _extend(
    store: SearchStore, spec: StudySpec, index: int, stage: Stage, lease: StoreLease
) -> int:
    """Append the slots a prepared stage lacks after its trials were raised; how many.

    The sampler's sequence goes on in the stored space from the stored seed: random and
    Sobol points of ``n + k`` are the ``n`` points and ``k`` more, so the slots there keep
    their points (a grid cannot grow: ``edits.classify`` refuses it). The point count is
    written after the slots, so a preparer that dies in between leaves a count that the
    next one corrects (the enqueue skips the slots that are there).
    """
    spec_stage = spec.stages[index]
    attrs = store.stage_attrs(stage)
    have = attrs[st.ATTR_POINTS]
    if have >= spec_stage.trials:
        return 0
    assert spec_stage.sampler != "grid", "a grid stage cannot be extended"
    space = SearchSpace.from_dict(attrs[st.ATTR_SPACE])
    # (stages prepared before the count was stored: their promote, as planned)
    promoted = attrs.get(st.ATTR_PROMOTED, min(spec_stage.promote, have) if index else 0)
    points = make_points(
        spec_stage.sampler, space, spec_stage.trials - promoted, attrs[st.ATTR_SEED]
    )
    added = store.enqueue(
        stage, space, _slots(spec, index, have, points[have - promoted :]), lease
    )
    store.write_stage_attrs(stage, {st.ATTR_POINTS: spec_stage.trials}, lease)
    log.info("extended %s to %d slots (%d added now)", stage.name, spec_stage.trials, added)
    return added


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
    trial)`` after the reported epochs where it can decide (:func:`decision_epochs`,
    ``store.Slot.report``).

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


def decision_epochs(stage: StageSpec) -> tuple[int, ...] | None:
    """The epochs after which the stage's pruner can stop a run, the only ones it is asked
    at (``store.Slot.report``); None: after every epoch (the median rule may decide after
    any epoch past its warm-up).

    ASHA's are its rungs, ``core.plan.rungs``, which the plan's budget arithmetic uses too:
    :func:`pruner` sets successive halving's ``min_resource`` and ``reduction_factor`` from
    the same two fields, and it decides only when a run's last epoch reaches its next rung
    (at any other epoch it returns False before it reads a trial or writes its rung attr),
    so asking there alone decides alike (``tests/test_stop_early.py`` checks both against
    Optuna's pruner) with one read of the stage per rung instead of one per epoch.
    """
    return tuple(rungs(stage)) if stage.stop_early == "asha" else None


def warm_up(spec: StudySpec) -> None:
    """Draw one point of each early-stopping stage's sampler, as a worker starts.

    A run that is stopped appends the slots its saved epochs buy, drawn from the stage's
    point sequence (:func:`stop_early`). A process's first Sobol draw imports scipy's
    ``qmc`` (1-5 s on this loaded machine), so every worker but the stage's preparer paid
    that inside its first stopped trial, after the trial was recorded and inside the
    search's span (about 1 s per worker in the 4-worker benchmark; docs/parallel.md).
    Here, it is paid while the worker would wait for the first stage's preparer anyway.
    """
    for stage in spec.stages:
        if stage.stop_early is not None:
            make_points(stage.sampler, spec.space, 1, 0)


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

    return StopEarly(
        pruner(stage), stage.budget, stage.epochs, space, more, decision_epochs(stage)
    )
