"""Fail fast: a stage whose trials keep failing stops the whole search, once, saying why.

A typo in an objective fails every trial the same way; running the other 47 of them only
burns time and prints 50 tracebacks. So, as Ray Tune's ``max_failures`` and the W&B agent
do, a stage stops:

- when ``max_failures`` trials failed and none succeeded (the objective never worked), or
- later, when more than half of its last ``WINDOW`` finished trials failed.

The decision is made from the database, so that every worker on every machine stops: the
worker that records a failure evaluates the rules and writes the stage's ``stopped`` mark
once (insert-if-absent); every worker reads the mark before each claim. Whoever sees it
re-queues the stage's failed trials (the budget is not burned: the failed attempts stay as
history) and stops. A stopped stage stays stopped for workers until the user relaunches
(``hpsearch launch`` clears it) or retries (``hpsearch retry``).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpsearch.records import TrialRecord
    from hpsearch.spec import StudySpec
    from hpsearch.store import SearchStore, Stage

log = logging.getLogger(__name__)

#: The late rule looks at this many of the newest finished trials...
WINDOW = 10
#: ...and stops when more than this fraction of them failed.
MAX_FAIL_RATE = 0.5


@dataclass(frozen=True)
class Outcomes:
    """A stage's finished trials that count (superseded attempts left out)."""

    succeeded: int
    failed: int
    recent: tuple[bool, ...]  # the newest WINDOW finished, newest first; True: failed


@dataclass(frozen=True)
class Stop:
    """Why a stage stopped: stored as its ``stopped`` study attr, shown by every command."""

    rule: str  # which rule fired, in words
    failures: int  # failed trials of the stage when it stopped
    reason: str  # the most common ``fail_reason``
    count: int  # how many failures gave it
    where: str = ""  # the last frame of its traceback, when there was one
    at: str = ""  # when (the deciding worker's clock, ISO 8601)
    by: str = ""  # which worker decided

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Stop:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def stop_rule(o: Outcomes, max_failures: int) -> str | None:
    """Pure: the rule that stops a stage with these outcomes, in words; None to go on.

    ``max_failures = 0`` never stops (failed trials then count towards the budget).
    """
    if max_failures == 0:
        return None
    if o.succeeded == 0:
        if o.failed >= max_failures:
            trials = "trial" if o.failed == 1 else "trials"
            return f"{o.failed} {trials} failed and none succeeded (max_failures = {max_failures})"
        return None
    bad = sum(o.recent)
    if len(o.recent) >= WINDOW and bad > MAX_FAIL_RATE * len(o.recent):
        return f"{bad} of its last {len(o.recent)} trials failed"
    return None


def describe(rule: str, records: list[TrialRecord], *, by: str = "") -> Stop:
    """The stop mark for a stage with these records: the most common failure reason (ties:
    the earliest trial's) and the last frame of its first trial's traceback."""
    failed = sorted(
        (r for r in records if r.state == "FAIL" and not r.superseded), key=lambda r: r.number
    )
    reasons = Counter(str(r.attrs.get("fail_reason", "no reason recorded")) for r in failed)
    reason, count = reasons.most_common(1)[0] if reasons else ("no reason recorded", 0)
    first = next((r for r in failed if r.attrs.get("fail_reason") == reason), None)
    where = str(first.attrs.get("fail_where", "")) if first is not None else ""
    at = datetime.now().isoformat(timespec="seconds")
    return Stop(rule, len(failed), reason, count, where, at, by)


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


def summary(stop: Stop) -> str:
    """One line, as ``hpsearch status`` shows it."""
    return f"{stop.failures} failures: {stop.reason}"


def format_stop(search: str, stage: str, stop: Stop) -> str:
    """What ``launch`` and ``worker`` print when the search stopped: the reason and where
    once, not a traceback per trial (each trial's is in its ``fail_traceback`` attr)."""
    lines = [
        f"search {search} stopped in stage {stage}: {stop.rule}",
        f"  reason ({stop.count} of {stop.failures} failures): {stop.reason}",
    ]
    if stop.where:
        lines.append(f"  at {stop.where}")
    lines += [
        "the failed trials are queued again (no budget lost): fix the cause, then launch again",
        "(each failed trial keeps its whole traceback in its fail_traceback attr)",
    ]
    return "\n".join(lines)
