"""The search-efficiency benchmark's smoke mode runs and prints its tables (not a timing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "search_efficiency_b.py"


@pytest.mark.timeout(180)
def test_quick_run_prints_a_table_per_problem(tmp_path):
    out = tmp_path / "tables.md"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for problem in ("branin", "hartmann6", "lr_dominant"):
        assert f"### {problem} (2 seeds" in proc.stdout
    for contender in ("hpsearch plan", "hpsearch grid", "optuna tpe+hyperband"):
        assert f"| {contender} | " in proc.stdout
    assert "budget to reach flat random's" in proc.stdout
    assert out.read_text() in proc.stdout
