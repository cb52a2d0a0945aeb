"""Fix and retry: re-queue a search's failed trials with their params (``hpsearch retry``,
``hpsearch launch --retry-failed``).

Each failed trial's slot gets a fresh WAITING copy (same params, slot number and seed),
so grid and Sobol points keep their places and a stage still ends with exactly ``trials``
finished trials; the failed attempt stays as history and is not counted twice.

A later stage was narrowed from the earlier one's results, failures included; re-running
those failures changes the results it should have been prepared from. So retrying stage
k while stage k+1 is already prepared is refused unless ``--from-stage`` names the stage
to prepare afresh: that stage's and every later stage's study is deleted (after asking),
and the next worker prepares them again from the retried results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hpsearch.core import failures
from hpsearch.core.errors import UserError
from hpsearch.engine import failfast

if TYPE_CHECKING:
    from hpsearch.core.spec import StudySpec
    from hpsearch.store import SearchStore, Stage

#: A stage being discarded must have no trial running under a live worker: one whose
#: heartbeat is fresher than this (the workers' default grace period).
LIVE_GRACE_S = 60.0
#: Trial numbers listed per stage; the rest are counted.
MAX_LISTED = 12


@dataclass(frozen=True)
class RetryPlan:
    """What a retry does: the stages whose failures are re-queued (with how many there
    are) and the prepared stages it discards (with how many trials each holds)."""

    retry: list[tuple[str, Stage, int]]
    discard: list[tuple[str, Stage, int]]

    def prompt(self, search: str) -> str:
        """The question asked before anything is discarded."""
        stages = ", ".join(f"{name} ({n} trials)" for name, _, n in self.discard)
        return (
            f"discard stage(s) {stages} of search {search}? Their trials are deleted, and "
            "the stages are prepared afresh from the retried results"
        )


def plan_retry(
    store: SearchStore, spec: StudySpec, *, stage: str | None = None, from_stage: str | None = None
) -> RetryPlan:
    """Decide what to retry and discard, writing nothing; a UserError (exit 2) explains
    a refusal and the way out."""
    names = [s.name for s in spec.stages]
    start = _index(names, from_stage, "--from-stage") if from_stage is not None else None
    if start == 0:
        raise UserError(
            f"--from-stage {from_stage}: the first stage cannot be discarded (it holds the "
            "search itself); to start afresh, rename the search (name = ...) or use "
            "another --storage"
        )
    targets = [_index(names, stage, "--stage")] if stage is not None else range(len(names))
    if start is not None:
        if stage is not None and targets[0] >= start:
            raise UserError(
                f"--stage {stage} is discarded by --from-stage {from_stage}; retry an "
                "earlier stage, or drop --stage"
            )
        targets = [i for i in targets if i < start]
    found = {  # the stages created so far, by index
        i: s for i, n in enumerate(names) if (s := store.find_stage(spec.name, n)) is not None
    }
    failed = {i: store.outcomes(found[i], 0).failed for i in targets if i in found}
    first = min((i for i, n in failed.items() if n), default=None)
    if first is not None:
        stale = [
            i for i in range(first + 1, len(names)) if i in found and (start is None or i < start)
        ]
        if stale:
            later = names[first + 1]
            raise UserError(
                f"stage {names[stale[0]]} was prepared from results that include stage "
                f"{names[first]}'s {failed[first]} failed trial(s); retried, they would "
                f"leave it narrowed from bad data. Add --from-stage {later} to discard "
                f"{later} and later stages and prepare them afresh from the retried "
                "results, or name a later stage with --stage to retry only its failures"
            )
    discard = []
    for i in range(start if start is not None else len(names), len(names)):
        if i not in found:
            continue
        live = store.live_count(found[i], LIVE_GRACE_S)
        if live:
            raise UserError(
                f"stage {names[i]} has {live} trial(s) running under live workers; stop "
                "them (Ctrl-C, or SIGTERM) before discarding it"
            )
        discard.append((names[i], found[i], len(store.records(found[i], names[i]))))
    retry = [(names[i], found[i], failed[i]) for i in failed]  # failed: stages found
    return RetryPlan(retry, discard)


def apply_retry(store: SearchStore, plan: RetryPlan) -> list[str]:
    """Discard (last stage first), then re-queue and lift the stop marks; lines to print.

    Discarding first: a crash half-way leaves failures still to re-queue, which the next
    retry does (it finds no prepared later stage), never a later stage prepared from them.
    """
    lines = []
    for name, stage, n in reversed(plan.discard):
        store.delete_stage(stage)
        lines.append(
            f"stage {name}: discarded ({n} trials); the next worker prepares it afresh "
            "from the retried results"
        )
    for name, stage, _ in plan.retry:
        requeued, stop = failfast.clear(store, stage)
        if requeued:
            shown = ", ".join(f"{old} as {new}" for old, new in requeued[:MAX_LISTED])
            more = f" and {len(requeued) - MAX_LISTED} more" if len(requeued) > MAX_LISTED else ""
            lines.append(
                f"stage {name}: re-queued {len(requeued)} failed trial(s) with their params "
                f"(trial {shown}{more})"
            )
        elif stop is None:
            lines.append(f"stage {name}: no failed trials to retry")
        if stop is not None:
            lines.append(f"stage {name}: lifted its stop ({failures.summary(stop)})")
    return lines


def _index(names: list[str], name: str, option: str) -> int:
    if name not in names:
        raise UserError(f"{option} {name}: no such stage (stages: {', '.join(names)})")
    return names.index(name)
