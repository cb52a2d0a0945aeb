"""Fail fast on the storage: the stop mark every worker on every machine obeys.

The rules are :mod:`hpsearch.core.failures`. The decision is made from the database, so
that every worker stops: the worker that records a failure evaluates the rules and writes
the stage's ``stopped`` mark once (insert-if-absent); every worker reads the mark before
each claim. Whoever sees it re-queues the stage's failed trials (the budget is not burned:
the failed attempts stay as history) and stops. A stopped stage stays stopped for workers
until the user relaunches (``hpsearch launch`` clears it) or retries (``hpsearch retry``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from hpsearch.core.failures import WINDOW, Stop, describe, stop_rule, summary

if TYPE_CHECKING:
    from hpsearch.core.spec import StudySpec
    from hpsearch.store import SearchStore, Stage

log = logging.getLogger(__name__)


def check(store: SearchStore, stage: Stage, max_failures: int, *, by: str) -> None:
    """After a failure: stop the stage if a rule says so (the mark is written once)."""
    rule = stop_rule(store.outcomes(stage, WINDOW), max_failures)
    if rule is None:
        return
    stop = describe(rule, store.records(stage, stage.name), by=by)
    if store.stop(stage, stop.to_dict()):
        log.info("%s stopped: %s", stage.name, rule)


def find_stop(store: SearchStore, spec: StudySpec) -> tuple[str, Stop] | None:
    """The first stopped stage of the search and its mark, or None."""
    for s in spec.stages:
        stage = store.find_stage(spec.name, s.name)
        mark = store.stopped(stage) if stage is not None else None
        if mark is not None:
            return s.name, Stop.from_dict(mark)
    return None


def clear(store: SearchStore, stage: Stage) -> tuple[list[tuple[int, int]], Stop | None]:
    """Re-queue the stage's failed trials, then lift its stop mark (in that order: a crash
    between leaves it stopped, and clearing again finishes the job). Returns the
    (failed, copy) numbers re-queued now, and the mark lifted, if any."""
    requeued = store.requeue_failed(stage)
    mark = store.stopped(stage)
    if mark is not None:
        store.clear_stop(stage)
    return requeued, Stop.from_dict(mark) if mark is not None else None


def resume(store: SearchStore, spec: StudySpec) -> list[str]:
    """What ``hpsearch launch`` does with a stopped search: the user relaunching is the
    signal that the cause was fixed, so the stop marks are lifted and the re-queued trials
    run again (they stop the search again if they still fail). Lines to print."""
    lines = []
    for s in spec.stages:
        stage = store.find_stage(spec.name, s.name)
        if stage is None or store.stopped(stage) is None:
            continue
        _, stop = clear(store, stage)
        assert stop is not None
        lines.append(
            f"stage {s.name} was stopped ({summary(stop)}); running its re-queued trials again"
        )
    return lines
