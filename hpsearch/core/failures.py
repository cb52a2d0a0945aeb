"""Fail fast, the rules: when a stage whose trials keep failing stops, and how it says why.

A typo in an objective fails every trial the same way; running the other 47 of them only
burns time and prints 50 tracebacks. So, as Ray Tune's ``max_failures`` and the W&B agent
do, a stage stops:

- when ``max_failures`` trials failed and none succeeded (the objective never worked), or
- later, when more than half of its last ``WINDOW`` finished trials failed.

Pure data and rules; :mod:`hpsearch.engine.failfast` applies them to the storage.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpsearch.core.records import TrialRecord

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
