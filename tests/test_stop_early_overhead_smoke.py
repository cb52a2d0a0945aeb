"""The early-stopping overhead benchmark runs end to end (a run check, not a timing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "stop_early_overhead.py"


@pytest.mark.slow  # a benchmark's smoke run, as the other benchmarks' are
def test_a_small_run_prints_a_row_per_rule_with_stopped_runs_buying_more():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--slots", "12", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {
        cells[0]: cells
        for line in proc.stdout.splitlines()
        if line.startswith("| ") and "---" not in line
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    assert set(rows) == {"stop_early", "none", "asha", "median"}, proc.stdout
    assert rows["none"][1] == "12" and rows["none"][4] == "1.00x"
    assert int(rows["asha"][1]) > 12, proc.stdout  # stopped runs' epochs bought more runs
