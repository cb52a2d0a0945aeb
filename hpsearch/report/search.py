"""Read a whole search back from storage into plain records: the report's data model.

Reading only: it works while workers run, and everything after this point (tables,
figures, notes) is computed from these records without touching the database.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hpsearch import store as st
from hpsearch.core.errors import UserError
from hpsearch.core.failures import Stop
from hpsearch.core.records import TrialRecord
from hpsearch.core.regions import Region, narrow
from hpsearch.core.space import SearchSpace
from hpsearch.core.spec import DEFAULT_KEEP, DEFAULT_MARGIN, StageSpec, StudySpec

if TYPE_CHECKING:
    from hpsearch.store import SearchReader


@dataclass(frozen=True)
class StageView:
    """One stage as stored: its plan, its trials, and the region it hands on."""

    stage: StageSpec
    index: int
    space: SearchSpace | None  # None: not prepared yet
    region_in: Region | None  # the region this stage searched (None for the first)
    records: list[TrialRecord]
    handed_on: Region | None  # the promising region of this stage's results
    stopped: Stop | None = None  # failures stopped the search here (hpsearch.engine.failfast)

    @property
    def finished(self) -> list[TrialRecord]:
        return [r for r in self.records if r.finished]

    @property
    def counts(self) -> dict[str, int]:
        out = {"complete": 0, "diverged": 0, "failed": 0, "stopped": 0, "running": 0, "waiting": 0}
        for r in self.records:
            if r.superseded:
                continue
            if r.state == "COMPLETE":
                out["diverged" if r.diverged else "complete"] += 1
            elif r.state == "FAIL":
                out["failed"] += 1
            elif r.state == "PRUNED":
                out["stopped"] += 1
            elif r.state == "RUNNING":
                out["running"] += 1
            elif r.state == "WAITING":
                out["waiting"] += 1
        return out

    @property
    def requeued(self) -> int:
        """Failed attempts whose slot was queued again (a retry, a relaunch after a stop,
        a worker that died): history, no longer counted as failed."""
        return sum(1 for r in self.records if r.superseded and r.state == "FAIL")

    @property
    def slots(self) -> int:
        """The stage's runs: its ``trials``, and more where stopped runs' epochs bought them."""
        return max(self.stage.trials, sum(1 for r in self.records if not r.superseded))

    @property
    def epochs_saved(self) -> int:
        """Epochs that early stopping took from losing runs (and gave to more runs)."""
        return sum(
            max(0, r.epochs - int(r.attrs.get("epochs_run", r.epochs)))
            for r in self.records
            if r.state == "PRUNED" and not r.superseded
        )

    @property
    def stopped_text(self) -> str:
        """``, 42 stopped early (378 epochs saved)`` where runs were stopped, else empty."""
        n = self.counts["stopped"]
        return f", {n} stopped early ({self.epochs_saved} epochs saved)" if n else ""

    @property
    def done(self) -> bool:
        c = self.counts
        return self.space is not None and c["running"] == 0 and c["waiting"] == 0

    @property
    def complete(self) -> bool:
        """Every slot the stage has holds a finished trial, and no more are owed: at least
        ``trials`` of them, and with early stopping an unspent budget too small for one
        more run (``store.sql.budget.committed_epochs`` counts the same way: a stopped run its
        epochs, any other its stage's). What a launch waits for."""
        slots = {r.slot for r in self.finished}
        if self.space is None or slots != set(range(self.slots)):
            return False
        if not self.stage.stop_early:
            return True
        # one finished trial per slot here, so the slots' epochs less what stopping saved
        spent = self.slots * self.stage.epochs - self.epochs_saved
        return self.stage.budget - spent < self.stage.epochs


@dataclass(frozen=True)
class Edit:
    """One spec the search has had (``store.spec_history``): when it became the search's,
    and the changes a relaunch applied (none for the spec first launched)."""

    at: str | None  # ISO 8601 (UTC); None where it was not recorded
    stages: tuple[str, ...]  # the stages it listed
    changes: tuple[str, ...]


#: How recent a running trial's heartbeat must be for a worker to count as on the search
#: (the workers' default ``--grace-period``).
LIVE_GRACE_S = 60.0


@dataclass(frozen=True)
class SearchState:
    """Where the search stands, as status and report lead with it."""

    word: str  # running, stopped on failures, complete, not running
    detail: str  # the cause or what is left, for people ("" when complete)
    fix: str = ""  # what to do about it, where there is something to do


@dataclass(frozen=True)
class SearchView:
    spec: StudySpec
    stages: list[StageView]
    history: tuple[Edit, ...] = ()  # empty for a search never edited
    live: int | None = None  # running trials with a fresh heartbeat (None: not read)
    workers: int = 0  # workers attached with a fresh beat (running, preparing, waiting)

    def state(self) -> SearchState:
        """Running (a worker's heartbeat is fresh), stopped on failures (with the cause),
        complete, or not running with work left (queued trials and no worker on them).
        The one source of the state word: status, report (terminal and HTML) and list."""
        from hpsearch.core.failures import summary

        name = self.spec.name
        running = sum(v.counts["running"] for v in self.stages)
        live = running if self.live is None else self.live
        if live:
            return SearchState("running", f"{live} trial(s) running")
        if self.workers:
            # attached, no trial of theirs running: preparing a stage, or at its barrier
            return SearchState("running", f"{self.workers} worker(s) on it, no trial running")
        for v in self.stages:
            if v.stopped is not None:
                return SearchState(
                    "stopped on failures",
                    f"stage {v.stage.name}: {summary(v.stopped)}",
                    f"fix the cause, then launch again (or hpsearch retry {name})",
                )
        if all(v.complete for v in self.stages):
            return SearchState("complete", "")
        queued = sum(v.counts["waiting"] for v in self.stages)
        left = [f"{queued} trial(s) queued"] if queued else []
        if running:
            left.append(f"{running} trial(s) of a worker gone quiet, re-queued when one starts")
        if not left:
            left = ["stages left to prepare"]
        return SearchState(
            "not running",
            ", ".join(left) + "; no worker is on it",
            f"launch it again (or hpsearch worker {name}) to go on",
        )


def load_search(
    store: SearchReader, name: str, *, grace_period: float = LIVE_GRACE_S
) -> SearchView:
    """Every stage of ``name`` with its records; raises UserError if unknown.

    ``name`` is a search's name, or a compare baseline's study name (``NAME/grid-baseline``).
    A trial or a worker counts as live with a heartbeat in the last ``grace_period`` s.
    """
    spec = store.find_spec(name)
    if spec is None:
        known = store.search_names()
        hint = f" (searches here: {', '.join(known)})" if known else " (the storage is empty)"
        raise UserError(f"no search named {name!r}{hint}")
    views = [_stage_view(store, spec, index) for index in range(len(spec.stages))]
    history = tuple(
        Edit(e.get("at"), tuple(s["name"] for s in e["spec"]["stage"]), tuple(e["changes"]))
        for e in store.spec_history(spec)
    )
    live, workers = None, 0
    if "/" not in name:
        live = store.live_trials(spec.name, grace_period)
        workers = len(store.live_workers(spec.name, grace_period))
    return SearchView(spec, _with_handed_on(spec, views), history, live, workers)


def load_stage(store: SearchReader, spec: StudySpec, index: int) -> StageView:
    """One stage with its records and the region it hands on: a bounded read, for the
    worker that writes the stage's dashboard note (it never loads the whole search)."""
    views = [_stage_view(store, spec, index)]
    if index + 1 < len(spec.stages):
        views.append(_stage_view(store, spec, index + 1, records=False))
    return _with_handed_on(spec, views)[0]


def _stage_view(
    store: SearchReader, spec: StudySpec, index: int, *, records: bool = True
) -> StageView:
    stage = spec.stages[index]
    found = store.find_stage(spec.name, stage.name)
    attrs = store.stage_attrs(found) if found is not None else {}
    space = SearchSpace.from_dict(attrs[st.ATTR_SPACE]) if st.ATTR_SPACE in attrs else None
    region_in = Region.from_dict(attrs[st.ATTR_REGION]) if attrs.get(st.ATTR_REGION) else None
    rows = store.records(found, stage.name) if found is not None and records else []
    stopped = Stop.from_dict(attrs[st.ATTR_STOPPED]) if attrs.get(st.ATTR_STOPPED) else None
    return StageView(stage, index, space, region_in, rows, None, stopped)


def _with_handed_on(spec: StudySpec, views: list[StageView]) -> list[StageView]:
    """Fill ``handed_on``: the next view's stored region, or (for the last stage, or one
    whose successor is not prepared yet) the region narrowing would give now."""
    out = []
    for i, v in enumerate(views):
        nxt = views[i + 1] if i + 1 < len(views) else None
        region = nxt.region_in if nxt is not None else None
        if region is None and v.space is not None and v.finished:
            keep, margin = region_rule(spec, i)
            region = narrow(v.space, v.records, keep=keep, margin=margin, direction=spec.direction)
        out.append(dataclasses.replace(v, handed_on=region))
    return out


def region_rule(spec: StudySpec, index: int) -> tuple[float, float]:
    """The ``keep`` and ``margin`` stage ``index``'s region is narrowed with: the next
    stage's, or for the last stage (where to look next) the defaults."""
    if index + 1 < len(spec.stages):
        nxt = spec.stages[index + 1]
        return nxt.keep, nxt.margin
    return DEFAULT_KEEP, DEFAULT_MARGIN


def load_baselines(store: SearchReader, name: str) -> dict[str, SearchView]:
    """The ``hpsearch compare`` baselines stored beside search ``name``, by method."""
    return {method: load_search(store, key) for method, key in store.baselines(name).items()}
