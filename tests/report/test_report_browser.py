"""The HTML report in a real headless Chromium: every figure drawn, offline, not blank.

Runs ``scripts/render_html.py`` (the script the README names) in its own process. Skips
where no Chromium is installed; with ``CI=true`` it must run. The screenshot is kept in
``test-artifacts/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hpsearch.report.build import ReportConfig, make_report

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


def test_html_report_renders_every_figure_in_chromium(finished_toy, tmp_path):
    if not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")):
        if os.environ.get("CI"):
            pytest.fail("no chromium on CI; .ci/run installs it (apt-get install -y chromium)")
        pytest.skip("no chromium binary: apt-get install -y chromium")
    html = tmp_path / "report.html"
    make_report(ReportConfig(finished_toy, "toy", html=str(html)))
    shot = ARTIFACTS / "report-toy.png"
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "render_html.py"),
            str(html),
            "--screenshot",
            str(shot),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads(r.stdout)
    figures = {f["id"]: f for f in summary["figures"]}
    # progress, the pair plot, one slice per parameter (lr, wd, act), learning curves
    assert len(figures) == 6, figures
    assert all(f["drawn"] and f["marks"] > 0 for f in figures.values()), figures
    assert figures["figure-2"]["marks"] >= 28  # every trial is a point of the lr slice
    assert summary["screenshot_bytes"] > 50_000  # a blank page compresses to a few KB
