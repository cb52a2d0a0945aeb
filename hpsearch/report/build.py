"""``hpsearch report``: one config, one call, every output the user asked for.

Storage is only read, so a report can be made while workers run. The terminal text is
returned; HTML, CSV and JSON files are written where asked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hpsearch.core.errors import UserError
from hpsearch.report.analysis import DEFAULT_EVALUATOR, analyze
from hpsearch.report.plotdata import progress, trials
from hpsearch.report.search import load_baselines, load_search
from hpsearch.report.terminal import format_answer, format_report

if TYPE_CHECKING:
    from hpsearch.store import SearchReader

log = logging.getLogger(__name__)


class OutputPathError(UserError):
    """An output file cannot be written where the user asked."""


@dataclass(frozen=True)
class ReportConfig:
    storage_url: str
    search: str
    html: str | None = None
    csv: str | None = None
    json: str | None = None
    parquet: str | None = None
    evaluator: str = DEFAULT_EVALUATOR
    wait_s: float = 10.0  # how long to wait for an unreachable database
    #: The text returned: ``full`` (the terminal report), ``answer`` (its one-line
    #: answer: the best trial, how many failed), ``none`` (files only).
    text: str = "full"


def check_output(option: str, path: str | None) -> None:
    """Refuse before any work: a folder that does not exist, or a path that is a folder."""
    if path is None or path == "-":
        return
    p = Path(path)
    if p.is_dir():
        raise OutputPathError(
            f"{option} {path}: is a folder; give a file name, e.g. {p / 'report'}"
        )
    if not p.resolve().parent.is_dir():
        raise OutputPathError(
            f"{option} {path}: the folder {p.resolve().parent} does not exist; create it first"
        )


def make_report(config: ReportConfig) -> tuple[str, list[str]]:
    """The terminal report (as ``config.text`` asks) and one line per file written."""
    from hpsearch.store import SearchReader

    outputs = (
        ("--html", config.html),
        ("--csv", config.csv),
        ("--json", config.json),
        ("--parquet", config.parquet),
    )
    for option, path in outputs:
        check_output(option, path)
    if [path for _, path in outputs].count("-") > 1:
        raise OutputPathError("only one of --csv, --json, --parquet may be - (standard output)")
    store = SearchReader.open(config.storage_url, wait_s=config.wait_s, readonly=True)
    try:
        return _make(config, store)
    finally:
        store.close()


def _make(config: ReportConfig, store: SearchReader) -> tuple[str, list[str]]:
    """:func:`make_report` on an open reader (closed by the caller, whatever happens)."""
    from hpsearch.report import page, tables

    view = load_search(store, config.search)
    # The analysis (importance, regions, advice) serves the HTML page and the full text only.
    report = analyze(view, config.evaluator) if config.html or config.text == "full" else None
    wrote = []
    if config.html:
        assert report is not None
        baselines = [
            progress(trials(b), view.spec.direction, f"{method} baseline")
            for method, b in sorted(load_baselines(store, config.search).items())
        ]
        size = page.write_html(report, config.html, baselines)
        wrote.append(f"wrote {config.html} ({size / 1e6:.1f} MB)")
    if config.csv:
        wrote.append(f"wrote {config.csv} ({tables.write_csv(view, config.csv)} trials)")
    if config.json:
        wrote.append(f"wrote {config.json} ({tables.write_json(view, config.json)} trials)")
    if config.parquet:
        n = tables.write_parquet(view, config.parquet)
        wrote.append(f"wrote {config.parquet} ({n} trials)")
    if config.text == "full":
        assert report is not None
        return format_report(report), wrote
    return (format_answer(view) if config.text == "answer" else ""), wrote
