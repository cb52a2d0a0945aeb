"""One row per trial: one pandas DataFrame for CSV, JSON, Parquet and ``Search.trials()``.

Columns: identity (stage, number, slot), state, value, epochs spent and budgeted, every
searched parameter as ``param_<name>`` (empty where a trial lacks it) and every ``[fixed]``
one (the whole configuration a trial ran with), then every scalar user attr as
``attr_<name>`` (the diagnostics: diverged, not_learning, overfit_gap, ...). JSON rows also
carry the lists (learning curves, per-layer activation std) and the reported values, which
a flat CSV cannot. A path of ``-`` writes to standard output.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpsearch.core.errors import UserError
from hpsearch.core.files import write_atomic
from hpsearch.report.plotdata import epochs_spent
from hpsearch.report.search import SearchView

if TYPE_CHECKING:
    import pandas as pd

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
    fixed = {k: v for k, v in view.spec.fixed.items() if not isinstance(v, list)}
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
            row.update({f"param_{k}": v for k, v in fixed.items() if k not in names})
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


#: Base columns' dtypes: pandas' nullable ones, so that a missing slot or value stays
#: missing instead of turning a column of trial numbers into floats.
DTYPES = {
    "stage": "string",
    "stage_index": "Int64",
    "number": "Int64",
    "slot": "Int64",
    "state": "string",
    "value": "Float64",
    "ok": "boolean",
    "diverged": "boolean",
    "epochs": "Float64",
    "epoch_budget": "Int64",
    "duration_s": "Float64",
    "superseded": "boolean",
}


def trials_frame(view: SearchView, *, lists: bool = False) -> pd.DataFrame:
    """Every trial as one row of a DataFrame (see the module docstring for the columns)."""
    import pandas as pd

    rows = trial_rows(view, lists=lists)
    frame = pd.DataFrame(rows, columns=columns(rows))
    return frame.astype(DTYPES).infer_objects()


def write_csv(view: SearchView, path: str | Path) -> int:
    """Write one row per trial; returns the number of rows."""
    frame = trials_frame(view)
    _write(path, frame.to_csv(index=False))
    return len(frame)


def write_json(view: SearchView, path: str | Path) -> int:
    """Write a JSON list of trials (with curves); returns the number of rows. Floats keep
    full precision (pandas' own ``to_json`` rounds to 15 digits)."""
    frame = trials_frame(view, lists=True)
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    _write(path, json.dumps(records, allow_nan=False, indent=1))
    return len(frame)


def write_parquet(view: SearchView, path: str | Path) -> int:
    """Write the trials as Parquet (needs pyarrow: ``pip install "hpsearch[parquet]"``)."""
    import importlib.util

    if importlib.util.find_spec("pyarrow") is None:
        raise UserError(
            f"--parquet {path}: writing Parquet needs pyarrow; "
            'install it with pip install "hpsearch[parquet]"'
        )
    import io

    frame = trials_frame(view)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    _write(path, buffer.getvalue())
    return len(frame)


def _write(path: str | Path, data: str | bytes) -> None:
    """To the file (whole or not at all), or to standard output for ``-``."""
    if str(path) == "-":
        if isinstance(data, bytes):
            sys.stdout.buffer.write(data)
        else:
            sys.stdout.write(data)
        sys.stdout.flush()
        return
    write_atomic(path, data)
