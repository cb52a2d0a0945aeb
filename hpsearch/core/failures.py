"""Fail fast, the rules: when a stage whose trials keep failing stops, and how it says why.

A typo in an objective fails every trial the same way; running the other 47 of them only
burns time and prints 50 tracebacks. So, as Ray Tune's ``max_failures`` and the W&B agent
do, a stage stops:

- when ``max_failures`` trials failed and none succeeded (the objective never worked), or
- later, when more than half of its last ``WINDOW`` finished trials failed.

Pure data and rules; :mod:`hpsearch.engine.failfast` applies them to the storage.
"""

from __future__ import annotations

import re
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
    reason: str  # the first message of the largest group of failures (``group_failures``)
    count: int  # how many failures are in that group
    where: str = ""  # the user's frame it was raised at, when there was one
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
    """The stop mark for a stage with these records: the largest group of failures (same
    exception type raised at the same line of the user's code; ties: the earliest), its
    first trial's message as the example and the user's frame it was raised at."""
    failed = [r for r in records if r.state == "FAIL" and not r.superseded]
    groups = group_failures(failed)
    at = datetime.now().isoformat(timespec="seconds")
    if not groups:
        return Stop(rule, 0, "no reason recorded", 0, "", at, by)
    top = groups[0]
    return Stop(rule, len(failed), top.example, top.count, top.where_line, at, by)


@dataclass(frozen=True)
class FailureGroup:
    """Failed trials that failed the same way: the same exception type raised at the same
    line (the user's frame), whatever values their messages hold."""

    kind: str  # the exception type (``ValueError``), or the reason itself without a type
    where: str  # ``file:line in function`` of the user's frame; empty when unknown
    where_line: str  # the same, with the line of code
    numbers: tuple[int, ...]  # the trials, in order
    example: str  # the first trial's ``fail_reason``

    @property
    def count(self) -> int:
        return len(self.numbers)

    def headline(self) -> str:
        """``6 x ValueError at train.py:12 in fit``: what the trials share."""
        at = f" at {short_path(self.where)}" if self.where else ""
        return f"{self.count} x {self.kind}{at}"

    def text(self, listed: int = 8) -> str:
        """One line: the group, its trials and its first message as the example."""
        shown = ", ".join(map(str, self.numbers[:listed]))
        more = f" and {self.count - listed} more" if self.count > listed else ""
        trials = "trial" if self.count == 1 else "trials"
        return f"{self.headline()} ({trials} {shown}{more}), e.g. {self.example}"


#: A number inside a message (``lr too large: 0.52``): reasons without an exception type
#: group with it replaced, so that values do not split them.
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def failure_key(attrs: dict[str, Any]) -> tuple[str, str]:
    """What failures are grouped by: the exception type and the user's frame
    (``fail_type``, ``fail_where`` without its line of code); for a record with no type
    (a returned NaN, a trial recorded before types were kept), the type from the reason's
    ``Type: message`` form, else the reason with its numbers blanked out."""
    reason = str(attrs.get("fail_reason", "no reason recorded"))
    kind = str(attrs.get("fail_type") or "")
    if not kind:
        head, sep, _ = reason.partition(": ")
        if sep and re.fullmatch(r"[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit|Warning)", head):
            kind = head
    where = location(str(attrs.get("fail_where", "")))
    if not kind:
        return _NUMBER.sub("#", reason)[:160], where
    return kind, where


def location(where: str) -> str:
    """``file:line in function`` of a ``fail_where`` (which may end with ``: code``)."""
    head, sep, _ = where.partition(": ")
    return head if sep and " in " in head else where


def short_path(where: str) -> str:
    """A location with its file relative to the current folder when it lies inside it."""
    import os

    try:
        rel = os.path.relpath(where)
    except ValueError:  # another drive (Windows)
        return where
    return where if rel.startswith("..") else rel


def group_failures(records: list[TrialRecord]) -> list[FailureGroup]:
    """The failed records in groups (:func:`failure_key`), the largest first (ties: the
    one that failed first)."""
    groups: dict[tuple[str, str], list[TrialRecord]] = {}
    for r in sorted(records, key=lambda r: r.number):
        if r.state == "FAIL":
            groups.setdefault(failure_key(r.attrs), []).append(r)
    out = [
        FailureGroup(
            kind,
            where,
            str(rs[0].attrs.get("fail_where", "")),
            tuple(r.number for r in rs),
            str(rs[0].attrs.get("fail_reason", "no reason recorded")),
        )
        for (kind, where), rs in groups.items()
    ]
    return sorted(out, key=lambda g: (-g.count, g.numbers[0]))


def failures_text(records: list[TrialRecord], *, groups: int = 3) -> str:
    """Every group of failures on a line of its own (the first ``groups``; the rest
    counted): what the report's warning and the launch summary say."""
    found = group_failures([r for r in records if r.state == "FAIL" and not r.superseded])
    lines = [g.text() for g in found[:groups]]
    rest = found[groups:]
    if rest:
        n = sum(g.count for g in rest)
        lines.append(f"and {n} more trial(s) in {len(rest)} other way(s) of failing")
    return "\n".join(lines)


def last_failure(records: list[TrialRecord]) -> TrialRecord | None:
    """The latest failed trial that kept a traceback (re-queued ones included: a stop's
    failures are re-queued, and their traceback is still the one to read)."""
    failed = [r for r in records if r.state == "FAIL" and r.attrs.get("fail_traceback")]
    return max(failed, key=lambda r: r.number, default=None)


def traceback_tail(record: TrialRecord, lines: int = 20) -> list[str]:
    """A failed trial's traceback in at most ``lines`` lines: its top (the line naming the
    user's frame, then the objective's frames down) and its last line (the exception),
    what lies between left out and counted."""
    text = str(record.attrs.get("fail_traceback", "")).rstrip("\n").splitlines()
    if len(text) <= lines:
        return text
    keep = max(1, lines - 2)
    return [*text[:keep], f"  ... ({len(text) - keep - 1} lines left out)", text[-1]]


def summary(stop: Stop) -> str:
    """One line, as ``hpsearch status`` shows it."""
    return f"{stop.failures} failures: {stop.reason}"


def format_stop(search: str, stage: str, stop: Stop) -> str:
    """What ``launch`` and ``worker`` print when the search stopped: the reason and where
    once, not a traceback per trial (each trial's is in its ``fail_traceback`` attr)."""
    lines = [
        f"search {search} stopped in stage {stage}: {stop.rule}",
        f"  reason ({stop.count} of {stop.failures} failures; the first one's message): "
        f"{stop.reason}",
    ]
    if stop.where:
        lines.append(f"  at {stop.where}")
    lines += [
        "the failed trials are queued again (no budget lost): fix the cause, then launch again",
        f"(hpsearch status {search} shows the last failure's traceback; every failed trial "
        "keeps its own in its fail_traceback attr)",
    ]
    return "\n".join(lines)
