"""One row per trial, for CSV, JSON and the HTML table.

Columns: identity (stage, number, slot), state, value, epochs spent and budgeted, every
searched parameter as ``param_<name>`` (empty where a trial lacks it), then every scalar
user attr as ``attr_<name>`` (the diagnostics: diverged, not_learning, overfit_gap, ...),
the same names as :func:`hpsearch.records.to_dataframe`. JSON rows also carry the lists
(learning curves, per-layer activation std) and the reported values, which a flat CSV cannot.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from hpsearch.files import write_atomic
from hpsearch.report.plotdata import epochs_spent
from hpsearch.report.search import SearchView

BASE_COLUMNS = (
    "stage",
    "stage_index",
    "number",
    "slot",
    "state",
    "value",
    "ok",
    "diverged",
    "epochs",
    "epoch_budget",
    "duration_s",
    "superseded",
)
#: Attrs that only describe the slot (already columns above) or the machine.
SKIP_ATTRS = frozenset({"slot", "stage", "epochs"})


def _clean(v: Any) -> Any:
    """JSON has no NaN or infinity; a missing number is ``null``."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v


def trial_rows(view: SearchView, *, lists: bool = False) -> list[dict[str, Any]]:
    """Every trial of every stage (running, waiting and re-queued ones included, with their
    state), in stage then trial order."""
    names = view.spec.space.names
    rows = []
    for v in view.stages:
        for r in sorted(v.records, key=lambda r: r.number):
            row: dict[str, Any] = {
                "stage": r.stage,
                "stage_index": v.index,
                "number": r.number,
                "slot": r.slot,
                "state": r.state,
                "value": r.value,
                "ok": r.ok,
                "diverged": r.diverged,
                "epochs": epochs_spent(r),
                "epoch_budget": r.epochs,
                "duration_s": r.duration_s,
                "superseded": r.superseded,
            }
            row.update({f"param_{n}": r.params.get(n) for n in names})
            for k, val in sorted(r.attrs.items()):
                if k in SKIP_ATTRS or k == "diverged":
                    continue
                if isinstance(val, bool | int | float | str) or (lists and isinstance(val, list)):
                    row[f"attr_{k}"] = val
            if lists:
                row["intermediate"] = {str(k): r.intermediate[k] for k in sorted(r.intermediate)}
            rows.append({k: _clean(x) for k, x in row.items()})
    return rows


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """Base columns, then params in the file's order, then attrs by name: stable headers."""
    seen: dict[str, None] = {c: None for c in BASE_COLUMNS}
    for row in rows:
        for k in row:
            if k.startswith("param_"):
                seen.setdefault(k, None)
    attrs = sorted({k for row in rows for k in row if k not in seen})
    return list(seen) + attrs


def write_csv(view: SearchView, path: str | Path) -> int:
    """Write one row per trial; returns the number of rows."""
    rows = trial_rows(view)
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns(rows), restval="")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, text.getvalue())
    return len(rows)


def write_json(view: SearchView, path: str | Path) -> int:
    """Write a JSON list of trials (with curves); returns the number of rows."""
    rows = trial_rows(view, lists=True)
    write_atomic(path, json.dumps(rows, allow_nan=False, indent=1))
    return len(rows)
