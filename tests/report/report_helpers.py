"""Hand-made records for the report tests (imported by name: tests/report is on the path)."""

from __future__ import annotations

from hpsearch.core.records import TrialRecord


def rec(number, value, *, stage="coarse", state="COMPLETE", epochs=1, curve=None, **kw):
    """A trial record; ``lr``/``wd``/``act`` keywords are params, the rest user attrs."""
    params = {"lr": 1e-3, "wd": 1e-4, "act": "relu"}
    params.update({k: kw.pop(k) for k in ("lr", "wd", "act") if k in kw})
    intermediate = {i + 1: v for i, v in enumerate(curve)} if curve else {}
    return TrialRecord(
        number,
        stage,
        state,
        params,
        value if state == "COMPLETE" else None,
        attrs=dict(kw),
        intermediate=intermediate,
        epochs=epochs,
    )
