"""The Python API: run, resume and inspect a search from a notebook or a script.

``hpsearch.launch(...)`` runs a search to the end (or resumes it) and returns a
:class:`Search`; ``hpsearch.load(name)`` opens a stored one. A ``Search`` reads the
database each time it is asked, so it shows what workers elsewhere have recorded since.
The CLI's ``launch``, ``status``, ``report`` and ``best`` are thin wrappers over the same
functions.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpsearch.errors import UserError
from hpsearch.spec import SpecError, StudySpec, load_spec, parse_spec

if TYPE_CHECKING:
    import pandas as pd

    from hpsearch.regions import Region
    from hpsearch.report.search import SearchView


def read_spec(spec: str | Path | Mapping[str, Any] | StudySpec) -> StudySpec:
    """A study file's path, its TOML text, a dict of the same keys, or a parsed spec."""
    if isinstance(spec, StudySpec):
        return spec
    if isinstance(spec, Mapping):
        return parse_spec(dict(spec), source="<dict>")
    if isinstance(spec, Path) or "\n" not in spec and "=" not in spec:
        return load_spec(spec)
    try:
        data = tomllib.loads(spec)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError("<toml>", [("", f"not valid TOML: {exc}")]) from exc
    return parse_spec(data, source="<toml>")


def _with_objective(spec: StudySpec, objective: Callable[..., Any], workers: int) -> StudySpec:
    """The spec naming ``objective`` by its import path, which is what the database stores
    (any worker, on any machine, imports it by that name)."""
    import dataclasses
    import importlib

    ref = f"{objective.__module__}:{objective.__qualname__}"
    try:
        found = getattr(importlib.import_module(objective.__module__), objective.__qualname__)
    except (ImportError, AttributeError):
        found = None
    if found is not objective and (workers > 1 or "." in objective.__qualname__):
        raise UserError(
            f"objective: {objective!r} cannot be imported by name ({ref}), so worker "
            "processes cannot load it; define it in a module (a .py file) and pass it, or "
            "use workers=1"
        )
    return dataclasses.replace(spec, objective=ref)


def launch(
    spec: str | Path | Mapping[str, Any] | StudySpec,
    *,
    storage: str | None = None,
    workers: int = 1,
    objective: Callable[..., Any] | None = None,
    device: str = "auto",
    threads: int | None = None,
    grace_period: int = 60,
) -> Search:
    """Run the search to the end (launching it again resumes) and return it.

    ``objective`` overrides the spec's: a function ``fn(params, epochs, report)``. With
    ``workers > 1`` it must be importable by name (defined in a module, not a notebook
    cell), because each worker is its own process. ``storage`` defaults to
    ``$HPSEARCH_STORAGE``, else ``hpsearch.db`` in the current folder.
    """
    import threading

    from hpsearch.loader import load_objective
    from hpsearch.local_workers import check_workers, run_local_workers, threads_per_worker
    from hpsearch.stages import register_search
    from hpsearch.store import SearchStore
    from hpsearch.urls import resolve_url
    from hpsearch.worker import WorkerConfig, run_worker

    parsed = read_spec(spec)
    fn = None
    if objective is not None:
        parsed, fn = _with_objective(parsed, objective, workers), objective
    url = resolve_url(storage)
    check_workers(url, workers)
    if fn is None:
        fn = load_objective(parsed.objective, parsed.base_dir)
    register_search(SearchStore.open(url), parsed)
    if workers == 1:
        config = WorkerConfig(
            url, parsed.name, threads or threads_per_worker(1), device, grace_period
        )
        run_worker(config, stop=threading.Event(), objective=fn)
    else:
        code = run_local_workers(
            url, parsed.name, parsed, workers, device=device, grace_period=grace_period
        )
        if code:
            raise RuntimeError(f"the workers stopped with exit code {code}; see their log")
    return Search(parsed.name, url)


def load(name: str, *, storage: str | None = None) -> Search:
    """A stored search; UserError if there is none of that name."""
    from hpsearch.urls import resolve_url

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
        from hpsearch.store import SearchStore

        return load_search(SearchStore.open(self.storage, wait_s=10.0, readonly=True), self.name)

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
        from hpsearch.best import find_winner

        return find_winner(self.view(), stage).to_dict()

    def regions(self) -> dict[str, Region]:
        """The promising region each stage with results hands on, by stage name."""
        return {v.stage.name: v.handed_on for v in self.view().stages if v.handed_on is not None}

    def status(self) -> str:
        """Trials done per stage and the best so far (``hpsearch status``)."""
        from hpsearch.report.terminal import format_status

        return format_status(self.view())

    def report(
        self, *, html: str | None = None, csv: str | None = None, json: str | None = None
    ) -> str:
        """The terminal report (``hpsearch report``), writing the files asked for."""
        from hpsearch.report.build import ReportConfig, make_report

        text, _ = make_report(ReportConfig(self.storage, self.name, html, csv, json))
        return text
