"""Render an HTML report in headless Chromium and check that every figure was drawn.

    python scripts/render_html.py report.html --screenshot test-artifacts/report.png

Chromium loads the file offline (no network: the report must carry plotly.js itself), runs
its scripts for a virtual time budget, then dumps the DOM. Every plotly figure must have
become a ``js-plotly-plot`` with an SVG (``main-svg``) that holds drawn marks (points or
lines); a figure left as an empty ``div`` means plotly.js did not load or threw. Prints a
JSON summary; exits 1 if a figure is blank, 2 if Chromium is missing.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)
#: Virtual milliseconds Chromium lets the page run before dumping: plotly draws in ~1 s.
BUDGET_MS = 5000


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(chromium: str, args: list[str], profile: str, timeout: float) -> str:
    out = subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return out.stdout


def figure_marks(dom: str) -> list[dict[str, object]]:
    """Per plotly figure in the dumped DOM: its id, whether plotly drew it, how many marks.

    Figures are split at each ``plotly-graph-div``; marks are scatter points (``point``)
    and line paths (``js-line``) plotly leaves in the SVG.
    """
    starts = [m.start() for m in re.finditer(r"<div[^>]*class=\"[^\"]*plotly-graph-div", dom)]
    out = []
    for i, start in enumerate(starts):
        chunk = dom[start : starts[i + 1] if i + 1 < len(starts) else len(dom)]
        head = chunk[: chunk.index(">")]
        fig_id = re.search(r'id="([^"]+)"', head)
        out.append(
            {
                "id": fig_id.group(1) if fig_id else f"#{i}",
                "drawn": "js-plotly-plot" in head and "main-svg" in chunk,
                "marks": len(re.findall(r'class="point"', chunk))
                + len(re.findall(r'class="js-line"', chunk)),
            }
        )
    return out


def render(
    html: Path, screenshot: Path | None, *, width: int = 1400, height: int = 3000
) -> dict[str, object]:
    """Dump the rendered DOM (and optionally a screenshot) of ``html``; summarize it."""
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError("no chromium binary on PATH (apt-get install -y chromium)")
    url = html.resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="hpsearch-chromium-") as profile:
        dom = _run(
            chromium,
            [f"--virtual-time-budget={BUDGET_MS}", "--dump-dom", url],
            profile,
            timeout=120,
        )
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            _run(
                chromium,
                [
                    f"--virtual-time-budget={BUDGET_MS}",
                    f"--screenshot={screenshot.resolve()}",
                    f"--window-size={width},{height}",
                    url,
                ],
                profile,
                timeout=120,
            )
    figures = figure_marks(dom)
    return {
        "html": str(html),
        "figures": figures,
        "blank": [f["id"] for f in figures if not f["drawn"] or not f["marks"]],
        "screenshot": str(screenshot) if screenshot else None,
        "screenshot_bytes": screenshot.stat().st_size if screenshot else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", type=Path, help="the report to render")
    parser.add_argument("--screenshot", type=Path, default=None, help="write a PNG here")
    parser.add_argument("--height", type=int, default=3000, help="window height in pixels")
    args = parser.parse_args()
    try:
        summary = render(args.html, args.screenshot, height=args.height)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1))
    return 1 if summary["blank"] or not summary["figures"] else 0


if __name__ == "__main__":
    sys.exit(main())
