"""The fault benchmark's quick mode runs end to end and finds nothing lost or duplicated."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "faults.py"


@pytest.mark.slow  # about a minute: a lease must expire, and three searches run
@pytest.mark.postgres
def test_quick_mode_prints_a_table_with_nothing_lost(postgres_url):
    admin = os.environ["HPSEARCH_TEST_POSTGRES_URL"]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--url", admin],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [
        line for line in proc.stdout.splitlines() if line.startswith("| ") and "---" not in line
    ]
    assert rows[0].startswith("| scenario | storage | runs |")
    assert len(rows) == 4, proc.stdout
    for line in rows[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[2] == "1" and cells[3] == "0" and cells[4] == "0", line
