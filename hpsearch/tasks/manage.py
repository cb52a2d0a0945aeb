"""``hpsearch list`` and ``hpsearch delete``: the searches in a storage, as searches.

``optuna studies`` shows stage studies one by one, and ``optuna delete-study`` on one of
them leaves a search half-broken (a later stage without the spec, which a relaunch
skips). Here a search is handled whole: listed with all its stages, deleted with all its
stages and compare baselines in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hpsearch.core.errors import UserError
from hpsearch.core.records import recommended
from hpsearch.report.search import SearchView, load_search

if TYPE_CHECKING:
    from hpsearch.store import SearchReader, SearchStore


class WorkersRunning(UserError):
    """A worker is on the search right now: deleting it under them is refused."""


@dataclass(frozen=True)
class SearchRow:
    """One search as ``hpsearch list`` shows it."""

    name: str
    state: str  # the word status leads with (SearchView.state), a stop with its cause
    stages: list[tuple[str, int, int]]  # (stage, trials done, trials planned)
    best: float | None
    best_stage: str | None
    baselines: list[str]


def search_row(store: SearchReader, view: SearchView) -> SearchRow:
    """``view`` as a row of the table: its state as status words it (running, stopped on
    failures with the cause, complete, not running), its stages, best and baselines."""
    spec = view.spec
    state = view.state()
    word = f"{state.word} ({state.detail})" if state.word == "stopped on failures" else state.word
    best = recommended([r for v in view.stages for r in v.records], spec.direction)
    return SearchRow(
        spec.name,
        word,
        [(v.stage.name, len(v.finished), v.slots) for v in view.stages],
        best.value if best is not None else None,
        best.stage if best is not None else None,
        sorted(store.baselines(spec.name)),
    )


def list_searches(store: SearchReader, grace_period: float) -> list[SearchRow]:
    """Every search in the storage (compare baselines are shown with their search); a
    trial or a worker counts as live with a heartbeat in the last ``grace_period`` s."""
    return [
        search_row(store, load_search(store, name, grace_period=grace_period))
        for name in store.search_names()
    ]


def format_searches(rows: list[SearchRow], orphaned: list[str], where: str) -> str:
    """The table of searches, and a line for each name left without its spec."""
    from hpsearch.report.blocks import format_table

    lines = [
        f"{name}: stage studies without a search (its first stage was deleted by hand); "
        f"hpsearch delete {name} removes the rest"
        for name in orphaned
    ]
    if not rows:
        return "\n".join([f"no searches in {where}", *lines])
    table = format_table(
        ["search", "state", "trials done per stage", "best", "baselines"],
        [
            [
                r.name,
                r.state,
                ", ".join(f"{s} {done}/{planned}" for s, done, planned in r.stages),
                "-" if r.best is None else f"{r.best:.6g} ({r.best_stage})",
                ", ".join(r.baselines) or "-",
            ]
            for r in rows
        ],
    )
    return "\n".join([f"searches in {where}:", table, *lines])


def check_deletable(
    store: SearchStore, name: str, grace_period: float, *, force: bool = False
) -> list[str]:
    """The studies that deleting ``name`` removes; UserError if there are none, and
    :class:`WorkersRunning` while a worker is live on it, unless ``force``. A first look,
    before asking: :func:`delete_search` decides again, in the transaction that deletes."""
    studies = store.search_studies(name)
    if not studies:
        raise _no_search(store, name)
    if not force:
        live = store.live_workers(name, grace_period)
        running = store.live_trials(name, grace_period)
        if live or running:
            raise _running(name, live, running, grace_period)
    return studies


def delete_search(
    store: SearchStore, name: str, grace_period: float, *, force: bool = False
) -> list[str]:
    """Delete ``name`` whole, refused (:class:`WorkersRunning`) if a worker is live on it,
    decided in the deleting transaction (a worker attaching meanwhile waits for it on
    PostgreSQL, then finds the search gone). The names deleted."""
    deleted, live, running = store.delete_search(name, grace_period, force=force)
    if live or running:
        raise _running(name, live, running, grace_period)
    if not deleted:
        raise _no_search(store, name)
    return deleted


def _no_search(store: SearchReader, name: str) -> UserError:
    known = store.search_names()
    hint = f" (searches here: {', '.join(known)})" if known else " (the storage is empty)"
    return UserError(f"no search named {name!r}{hint}")


def _running(name: str, live: list[str], running: int, grace_period: float) -> WorkersRunning:
    who = []
    if live:
        who.append(f"{len(live)} worker(s) attached ({', '.join(live[:3])})")
    if running:
        who.append(f"{running} trial(s) running")
    return WorkersRunning(
        f"search {name} has {' and '.join(who)}, with a heartbeat in the last "
        f"{grace_period:g} s; stop its workers first, or pass --force if they are gone "
        "(a worker still running would write on into a new, half-made search)"
    )


#: Where ``retry`` looks for a search's study file to name in its advice.
STUDY_FOLDERS = (".", "studies")


def study_files_named(name: str, folders: tuple[str, ...] = STUDY_FOLDERS) -> list[str]:
    """The study files (``*.toml``) in ``folders`` whose ``name`` is ``name``, as paths a
    user can type from here: what ``hpsearch retry`` tells them to launch again. Files
    that do not parse are passed over."""
    import tomllib
    from pathlib import Path

    found = []
    for folder in folders:
        for path in sorted(Path(folder).glob("*.toml")):
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
                continue
            if data.get("name") == name:
                found.append(str(path))
    return found
