"""The Python API: run, resume and inspect a search from a notebook or a script.

``hpsearch.launch(...)`` runs a search to the end (or resumes it) and returns a
:class:`Search`; ``hpsearch.load(name)`` opens a stored one. A ``Search`` reads the
database each time it is asked, so it shows what workers elsewhere have recorded since.
The CLI's ``launch``, ``status``, ``report`` and ``best`` are thin wrappers over the same
functions.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpsearch.core.errors import UserError
from hpsearch.core.spec import SpecError, StudySpec
from hpsearch.objectives.catalog import load_spec, parse_spec

if TYPE_CHECKING:
    import pandas as pd

    from hpsearch.core.regions import Region
    from hpsearch.engine.stages import Registration
    from hpsearch.report.search import SearchView
    from hpsearch.store import SearchReader, SearchStore

log = logging.getLogger(__name__)

#: How long a one-shot call (registering a launch, status, list, delete, retry) waits for
#: an unreachable database; a worker waits longer (``hpsearch.store.WORKER_WAIT_S``).
COMMAND_WAIT_S = 10.0


def _store(url: str, *, readonly: bool = False) -> SearchStore:
    """The store for one call of this API, with a command's patience, not a worker's.

    Imported here, as every floor below is in this module: ``import hpsearch`` (and
    ``hpsearch --help``) must not load Optuna, SQLAlchemy or torch."""
    from hpsearch.store import SearchStore

    return SearchStore.open(url, wait_s=COMMAND_WAIT_S, readonly=readonly)


@contextlib.contextmanager
def _reader(url: str) -> Iterator[SearchReader]:
    """A read-only store for one call that only looks (status, best, list, report, a
    relaunch's checks): plain SQL, no Optuna imported or opened (about a second of such
    a command), its connections closed after the call."""
    from hpsearch.store import SearchReader

    reader = SearchReader.open(url, wait_s=COMMAND_WAIT_S, readonly=True)
    try:
        yield reader
    finally:
        reader.close()


def _stored(url: str, *, unknown: bool = True) -> bool:
    """Whether the database at ``url`` is there with Optuna's tables (a search may be
    stored in it): read without creating anything, as a missing SQLite file is not;
    ``unknown`` where the database cannot be asked now (``opening.has_tables``)."""
    from hpsearch.store.opening import has_tables
    from hpsearch.store.urls import sqlite_path

    path = sqlite_path(url)
    if path is not None and (":memory:" in url or not path.exists()):
        return False
    return has_tables(url, unknown=unknown)


def read_spec(
    spec: str | Path | Mapping[str, Any] | StudySpec, *, objective: str | None = None
) -> StudySpec:
    """A study file's path, its TOML text, a dict of the same keys, or a parsed spec.

    ``objective``: the import name of a function passed to the API, put in place of the
    spec's ``objective`` before validation (so that a dict or TOML text needs none, and is
    validated against that function, not the built-in CNN a missing key means)."""
    if isinstance(spec, StudySpec):
        return spec
    if isinstance(spec, Mapping):
        data = dict(spec)
        source = "<dict>"
    elif isinstance(spec, Path) or "\n" not in spec and "=" not in spec:
        return load_spec(spec)
    else:
        try:
            data = tomllib.loads(spec)
        except tomllib.TOMLDecodeError as exc:
            raise SpecError("<toml>", [("", f"not valid TOML: {exc}")]) from exc
        source = "<toml>"
    if objective is not None:
        data["objective"] = objective
    return parse_spec(data, source=source)


def objective_name(objective: Callable[..., Any], workers: int) -> str:
    """The ``module:function`` name the database stores for a function passed to the API:
    one a worker elsewhere can import. A function of a script run as ``__main__`` is named
    by the script's module (``train:fn`` for ``python train.py``). Refused, with the
    reason, where worker processes could not load it: a lambda or a function defined
    inside another, a function of a notebook or an interactive session (``__main__``
    with no file), or a script whose top level would run again in each worker (no
    ``if __name__ == "__main__":`` guard). With ``workers=1`` the function runs in this
    process, and such names are stored as they are (``__main__:fn``)."""
    import importlib
    import sys

    module, qualname = objective.__module__, objective.__qualname__
    ref = f"{module}:{qualname}"
    what = f"objective: {getattr(objective, '__name__', objective)!r} ({ref})"
    many = f"with workers={workers} each worker is its own process and imports it by name"
    if "<" in qualname or "." in qualname:  # <lambda>, <locals>, a method
        if workers > 1:
            raise UserError(
                f"{what} cannot be imported by name, as it is not defined at the top of a "
                f"module; {many}: define it at the top of a .py file, or use workers=1"
            )
        return ref
    if module == "__main__":
        file = getattr(sys.modules.get("__main__"), "__file__", None)
        path = Path(file) if file else None
        if path is None or path.suffix != ".py" or not path.stem.isidentifier():
            if workers > 1:
                raise UserError(
                    f"{what} is defined in __main__ (a notebook or an interactive session), "
                    f"which no other process can import; {many}: define it in a module (a "
                    ".py file beside the notebook) and import it from there, or use workers=1"
                )
            return ref
        if workers > 1 and not _guarded(path):
            raise UserError(
                f"{what} is defined in the script {path}, which has no "
                f'`if __name__ == "__main__":` guard: each of the {workers} worker processes '
                f"would run the whole script again when it imports {path.stem}; put the "
                "launch under that guard, or use workers=1"
            )
        return f"{path.stem}:{qualname}"
    try:
        found = getattr(importlib.import_module(module), qualname)
    except (ImportError, AttributeError):
        found = None
    if found is not objective and workers > 1:
        raise UserError(
            f"{what} cannot be imported by name ({module} has no {qualname} that is this "
            f"function); {many}: define it at the top of a .py file, or use workers=1"
        )
    return ref


def _guarded(script: Path) -> bool:
    """Whether ``script`` has a top-level ``if __name__ == "__main__":`` block."""
    import ast

    try:
        tree = ast.parse(script.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return False
    return any(
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and "__name__" in ast.unparse(node.test)
        and "__main__" in ast.unparse(node.test)
        for node in tree.body
    )


def _with_objective(spec: StudySpec, objective: Callable[..., Any], workers: int) -> StudySpec:
    """The spec naming ``objective`` by its import path, which is what the database stores
    (any worker, on any machine, imports it by that name)."""
    import dataclasses
    import sys

    name = objective_name(objective, workers)
    module = name.partition(":")[0]
    if objective.__module__ == "__main__" and module != "__main__":
        # a script's function: its module is the script, imported from the script's folder
        script = Path(sys.modules["__main__"].__file__ or ".").resolve()
        if (Path(spec.base_dir) / script.name).resolve() != script:
            spec = dataclasses.replace(spec, base_dir=str(script.parent))
    return dataclasses.replace(spec, objective=name)


@dataclass(frozen=True)
class RunOptions:
    """How a search is worked on: one frozen config, built from the CLI's options or the
    API's arguments, so that both run the same code."""

    workers: int = 1
    device: str = "auto"
    threads: int | None = None  # None: this machine's cores split between the workers
    grace_period: int = 60
    gpus_per_worker: int = 1
    max_failures: int | None = None  # None: the study file's
    progress: bool = True


@dataclass(frozen=True)
class Outcome:
    """How a run ended: ``code`` 0 (done), 1 (not complete) or 130 (interrupted); the
    stop on failures, if the search stopped; this process's worker stats (one worker)."""

    code: int
    stopped: tuple[str, Any] | None = None
    stats: Any = None


class SearchStopped(RuntimeError):
    """The search stopped on failures (the message says why, once): fix the cause and
    launch again."""


def register(
    spec: StudySpec,
    url: str,
    *,
    workers: int = 1,
    objective: Callable[..., Any] | None = None,
    source: str = "<spec>",
) -> tuple[StudySpec, Registration, Callable[..., Any]]:
    """Store ``spec`` (or find it stored: a resume, applying the file's compatible edits)
    after the checks that need no training: the objective imports, the storage serves
    ``workers``. Returns the spec as stored (naming a callable ``objective`` by its import
    path), what registering did (new or not, the edits applied) and the objective
    function."""
    from hpsearch.engine.loader import check_signature, load_objective
    from hpsearch.engine.local_workers import check_workers
    from hpsearch.engine.stages import preview_search, register_search

    if objective is not None:
        check_signature(objective, getattr(objective, "__qualname__", "objective"), source)
        spec = _with_objective(spec, objective, workers)
    if _stored(url, unknown=False):
        # An edit a relaunch cannot apply is refused from a read, before the objective
        # is imported (torch, for the built-in one) or Optuna's storage opened; registering
        # compares again, under the leases, what this read let through (and all of it
        # where the database could not be asked now).
        with _reader(url) as reader:
            preview_search(reader, spec)
    fn = (
        objective
        if objective is not None
        else load_objective(spec.objective, spec.base_dir, source=source)
    )
    check_workers(url, workers)
    registered = register_search(_store(url), spec)
    return registered.spec, registered, fn


def run(
    url: str,
    key: str,
    options: RunOptions,
    *,
    objective: Callable[..., Any] | None = None,
    stop: threading.Event | None = None,
    stop_on_signals: bool = False,
) -> Outcome:
    """Work on ``key`` (a search, or a compare baseline's study name) until it is done:
    in this process for one worker, else in local worker processes; the same progress
    display either way (``hpsearch.engine.progress``). ``stop_on_signals``: SIGINT and
    SIGTERM set ``stop`` (a command's run; the local workers' launcher has its own)."""
    from hpsearch.engine.failfast import find_stop
    from hpsearch.engine.worker import handle_stop_signals
    from hpsearch.store import SearchStore

    stop = stop or threading.Event()
    if stop_on_signals and options.workers == 1:
        handle_stop_signals(stop)

    # The worker's patience, not a command's: this reader finds the spec and, at the end,
    # whether the search stopped; a worker must not exit on a blip the store rides out.
    reader = SearchStore.open(url, readonly=True)
    spec = reader.find_spec(key)
    if spec is None:
        raise UserError(f"no search named {key!r} in {reader.masked_url}")
    stats = None
    if options.workers == 1:
        try:
            stats = _run_here(url, key, spec, options, objective, stop, reader)
        except KeyboardInterrupt:  # the running trial was re-queued on the way out
            stop.set()
        code = 130 if stop.is_set() else 0
    else:
        from hpsearch.engine.local_workers import run_local_workers

        code = run_local_workers(
            url,
            key,
            spec,
            options.workers,
            device=options.device,
            threads=options.threads,
            grace_period=options.grace_period,
            gpus_per_worker=options.gpus_per_worker,
            progress=options.progress,
            max_failures=options.max_failures,
        )
    stopped = None if code == 130 else find_stop(reader, spec)
    return Outcome(1 if stopped is not None else code, stopped, stats)


def _run_here(
    url: str,
    key: str,
    spec: StudySpec,
    options: RunOptions,
    objective: Callable[..., Any] | None,
    stop: threading.Event,
    reader: SearchStore,
) -> Any:
    """One worker in this process, the progress drawn by a thread beside it (from
    ``reader``, the run's read-only store), each finished stage given its dashboard note."""
    import contextlib

    from hpsearch.engine.local_workers import threads_per_worker
    from hpsearch.engine.progress import Display, Watcher
    from hpsearch.engine.worker import WorkerConfig, run_worker
    from hpsearch.report.note import on_worker_event_in_background, wait_for_notes

    config = WorkerConfig(
        url,
        key,
        options.threads or threads_per_worker(1),
        options.device,
        options.grace_period,
        max_failures=options.max_failures,
    )
    watching: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if options.progress:
        display = Display(spec, reload=lambda: reader.current_spec(spec))
        watching = Watcher(lambda: reader.stage_counts(spec.name), display)
    try:
        with watching:
            return run_worker(
                config, stop=stop, on_event=on_worker_event_in_background, objective=objective
            )
    finally:
        wait_for_notes()  # a worker that stopped early: the notes it began are written


def launch(
    spec: str | Path | Mapping[str, Any] | StudySpec,
    *,
    storage: str | None = None,
    workers: int = 1,
    objective: Callable[..., Any] | None = None,
    device: str = "auto",
    threads: int | None = None,
    grace_period: int = 60,
    max_failures: int | None = None,
    progress: bool = True,
) -> Search:
    """Run the search to the end (launching it again resumes) and return it.

    ``objective`` overrides the spec's: a function ``fn(params, epochs, report)``. With
    ``workers > 1`` it must be importable by name (defined in a module, not a notebook
    cell), because each worker is its own process. ``storage`` defaults to
    ``$HPSEARCH_STORAGE``, else ``hpsearch.db`` in the current folder. Raises
    :class:`SearchStopped` when the search stopped on failures (its failed trials are
    queued again: fix the cause and launch again).
    """
    from hpsearch.core import failures
    from hpsearch.store.urls import resolve_url

    url = resolve_url(storage)
    name = None if objective is None else objective_name(objective, workers)
    parsed, registered, fn = register(
        read_spec(spec, objective=name), url, workers=workers, objective=objective
    )
    for line in [*registered.changes, *registered.notes]:
        log.warning("search %s: %s", parsed.name, line)
    resume(url, parsed)
    options = RunOptions(workers, device, threads, grace_period, 1, max_failures, progress)
    outcome = run(url, parsed.name, options, objective=fn if objective is not None else None)
    if outcome.stopped is not None:
        raise SearchStopped(failures.format_stop(parsed.name, *outcome.stopped))
    if outcome.code == 130:
        raise KeyboardInterrupt
    if outcome.code:
        raise RuntimeError(f"search {parsed.name} did not complete; launch it again to resume")
    return Search(parsed.name, url)


def dry_run(
    spec: StudySpec,
    device: str,
    *,
    url: str | None = None,
    workers: int = 1,
    source: str = "<spec>",
) -> str:
    """What ``launch --dry-run`` does: the checks launch makes before it writes (the
    objective imports, the built-in one loads its data, the storage serves ``workers``)
    and, against the search stored in ``url`` if there is one, what a relaunch would do:
    the same refusal (SpecMismatch, exit 2) for an edit it cannot apply, else the edits
    it would apply and the plan as stored plus the edit. Writes nothing: a missing SQLite
    file is not created."""
    from hpsearch.engine.loader import preflight
    from hpsearch.engine.local_workers import check_workers
    from hpsearch.report.console import format_plan
    from hpsearch.store.urls import mask_url

    preflight(spec, device, source=source)
    if url is None:
        return format_plan(spec)
    check_workers(url, workers)
    if not _stored(url):
        head = [f"dry run: a new search {spec.name} in {mask_url(url)} (nothing written)"]
        return "\n".join([*head, format_plan(spec)])
    from hpsearch.engine.stages import preview_search

    with _reader(url) as reader:
        preview = preview_search(reader, spec)
    if preview.new:
        head = [f"dry run: a new search {spec.name} in {mask_url(url)} (nothing written)"]
    elif preview.changes:
        head = [
            f"dry run: search {spec.name} is stored in {mask_url(url)}; a relaunch would "
            "apply these edits (nothing written):",
            *(f"  {line}" for line in preview.changes),
            *(f"note: {note}" for note in preview.notes),
        ]
    else:
        head = [
            f"dry run: search {spec.name} is stored in {mask_url(url)} as in the file; a "
            "relaunch resumes it (nothing written)"
        ]
    return "\n".join([*head, format_plan(preview.spec)])


def resume(url: str, spec: StudySpec) -> list[str]:
    """Lift the search's stops on failures, as a relaunch does: relaunching is the signal
    that the cause was fixed, so the re-queued trials run again. Lines to print."""
    from hpsearch.engine import failfast

    return failfast.resume(_store(url), spec)


def find_search(url: str, name: str) -> StudySpec:
    """The spec stored for search ``name``; SearchNotFound (exit 2) if there is none."""
    from hpsearch.engine.worker import SearchNotFound

    with _reader(url) as reader:
        spec = reader.find_spec(name)
    if spec is None:
        raise SearchNotFound(f"no search named {name!r} in {reader.masked_url}")
    return spec


def retry(
    url: str,
    spec: StudySpec,
    *,
    stage: str | None = None,
    from_stage: str | None = None,
    confirm: Callable[[str], None] | None = None,
) -> list[str]:
    """Re-queue the search's failed trials with their params and lift its stops
    (``hpsearch retry``); with ``from_stage``, discard that stage and later ones first.
    ``confirm`` is called with the question before anything is discarded and raises to
    refuse (None: discard without asking). Lines to print."""
    from hpsearch.engine.retry import apply_retry, plan_retry

    store = _store(url)
    plan = plan_retry(store, spec, stage=stage, from_stage=from_stage)
    if plan.discard and confirm is not None:
        confirm(plan.prompt(spec.name))
    return apply_retry(store, plan)


def list_searches(url: str, grace_period: float = 60) -> str:
    """Every search in the storage (``hpsearch list``): stages, trials done, state, best."""
    from hpsearch.store.urls import mask_url
    from hpsearch.tasks import manage

    with _reader(url) as reader:
        rows = manage.list_searches(reader, grace_period)
        return manage.format_searches(rows, reader.orphaned_searches(), mask_url(url))


def delete(
    url: str,
    name: str,
    *,
    grace_period: float = 60,
    force: bool = False,
    confirm: Callable[[list[str]], None] | None = None,
) -> list[str]:
    """Delete search ``name``, every stage study and compare baseline, in one transaction
    (``hpsearch delete``); refused while a worker is live on it (attached with a fresh
    beat: running, preparing, between trials or at a stage barrier) unless ``force``,
    decided in the deleting transaction.
    ``confirm`` is called with the studies first and raises to refuse. The names deleted."""
    from hpsearch.tasks.manage import check_deletable, delete_search

    studies = check_deletable(_store(url, readonly=True), name, grace_period, force=force)
    if confirm is not None:
        confirm(studies)
    return delete_search(_store(url), name, grace_period, force=force)


def register_baselines(url: str, spec: StudySpec, *, source: str = "<spec>") -> list[str]:
    """Store the search and its grid and random baselines for ``hpsearch compare`` (or
    find them stored), once its objective imports. The keys to run, the search first."""
    from hpsearch.engine.loader import load_objective
    from hpsearch.tasks.compare import register_baselines as register_all

    load_objective(spec.objective, spec.base_dir, source=source)
    return register_all(_store(url), spec)


def comparison(url: str, name: str) -> str:
    """The search and its baselines compared at equal epoch budgets, as text."""
    from hpsearch.report.comparison import format_comparison, method_result
    from hpsearch.report.search import load_baselines, load_search

    with _reader(url) as reader:
        view = load_search(reader, name)
        baselines = sorted(load_baselines(reader, name).items())
    results = [method_result("coarse-to-fine", view)]
    results += [method_result(method, b) for method, b in baselines]
    return format_comparison(view, results)


def load(name: str, *, storage: str | None = None) -> Search:
    """A stored search; UserError if there is none of that name."""
    from hpsearch.store.urls import resolve_url

    search = Search(name, resolve_url(storage))
    search.view()  # fail now, with the names that are there, rather than at first use
    return search


@dataclass(frozen=True)
class Search:
    """A search in a database. Every method reads the database afresh."""

    name: str
    storage: str

    def view(self) -> SearchView:
        """Every stage with its records (the report's data model)."""
        from hpsearch.report.search import load_search

        with _reader(self.storage) as reader:
            return load_search(reader, self.name)

    @property
    def spec(self) -> StudySpec:
        return self.view().spec

    def trials(self) -> pd.DataFrame:
        """One row per trial: stage, number, state, value, epochs, ``param_*`` (fixed
        params included), ``attr_*`` diagnostics. The same table as ``report --csv``."""
        from hpsearch.report.tables import trials_frame

        return trials_frame(self.view())

    def curves(self) -> pd.DataFrame:
        """Per-epoch reported values, long format: stage, number, epoch, value."""
        import pandas as pd

        rows = [
            {"stage": r.stage, "number": r.number, "epoch": epoch, "value": value}
            for v in self.view().stages
            for r in v.records
            for epoch, value in sorted(r.intermediate.items())
        ]
        return pd.DataFrame(rows, columns=["stage", "number", "epoch", "value"])

    def best(self, stage: str | None = None) -> dict[str, Any]:
        """The recommended configuration (``hpsearch best --format json``): ``params``
        with ``[fixed]``, ``value``, ``stage``, ``trial``, ``epochs``, ``seed``..."""
        from hpsearch.tasks.best import find_winner

        return find_winner(self.view(), stage).to_dict()

    def regions(self) -> Regions:
        """The promising region each stage with results hands on, by stage name (a dict
        that prints as the report words the regions)."""
        view = self.view()
        names = [s.name for s in view.spec.stages]
        return Regions(
            {v.stage.name: v.handed_on for v in view.stages if v.handed_on is not None}, names
        )

    def status(self) -> str:
        """Trials done per stage and the best so far (``hpsearch status``)."""
        from hpsearch.report.terminal import format_status

        return format_status(self.view())

    def report(
        self, *, html: str | None = None, csv: str | None = None, json: str | None = None
    ) -> ReportText:
        """The terminal report (``hpsearch report``), writing the files asked for: text
        (``print`` it) that a notebook renders as HTML."""
        from hpsearch.report.build import ReportConfig, make_report

        text, _ = make_report(ReportConfig(self.storage, self.name, html, csv, json))
        return ReportText(text)


class ReportText(str):
    """A report's text: a ``str`` (print it, search it), shown as the text in a terminal
    and as preformatted HTML in a notebook (``_repr_html_``)."""

    def __str__(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return str.__str__(self)

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(str.__str__(self))}</pre>"


class Regions(dict[str, "Region"]):
    """The region each stage hands on, by stage name; printed (and shown in a notebook)
    as the report words it, not as the records' reprs."""

    def __init__(self, regions: dict[str, Region], stages: list[str]) -> None:
        super().__init__(regions)
        self._stages = stages

    def __str__(self) -> str:
        blocks = []
        for name, region in self.items():
            i = self._stages.index(name) if name in self._stages else -1
            nxt = self._stages[i + 1] if 0 <= i < len(self._stages) - 1 else None
            to = f"handed to stage {nxt}" if nxt else "where to look next"
            lines = region.lines()
            blocks.append(
                "\n".join(
                    [f"stage {name}: promising region ({lines[0]}), {to}:"]
                    + [f"  {x}" for x in lines[1:]]
                )
            )
        return "\n".join(blocks) if blocks else "no stage has results yet"

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(str(self))}</pre>"
