"""The search-efficiency benchmark's smoke mode runs end to end (a run check, not a timing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "search_efficiency.py"


@pytest.mark.slow
def test_quick_mode_prints_a_table_for_every_problem_and_contender(tmp_path):
    out = tmp_path / "tables.md"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout
    for problem in ("branin", "lr-dominant"):
        assert f"### {problem}: 2 seeds" in text
    for contender in (
        "hpsearch plan",
        "hpsearch grid",
        "hpsearch random",
        "optuna random",
        "optuna grid",
        "optuna tpe",
        "optuna tpe+hyperband",
    ):
        assert text.count(f"| {contender} |") == 2, contender
    assert "| contender | @25% | @50% | @100% | budget to reach" in text
    assert out.read_text().startswith("### branin")
