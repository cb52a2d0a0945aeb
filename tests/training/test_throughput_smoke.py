"""The throughput benchmark runs end to end (its numbers are not checked: timing is noise)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "trainer_throughput.py"


@pytest.mark.slow
def test_quick_benchmark_prints_its_table() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert (
        "| measurement | device | processes x threads | images/s (median) | ratio |" in done.stdout
    )
    assert "| hpsearch objective | cpu |" in done.stdout
    assert "| hand-written loop | cpu |" in done.stdout
