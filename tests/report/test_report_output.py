"""Output discipline: writing files says where in a line each, ``-q`` prints the final
answer alone, and the HTML page stays within its size budget (docs/benchmarks.md)."""

from __future__ import annotations

import json
import re

from cli_runner import hpsearch

from hpsearch.report.build import ReportConfig, make_report

#: The HTML budget for a small search (docs/benchmarks.md): plotly.js gzipped (1.96 MB)
#: and the page's own data.
BUDGET_BYTES = 2_100_000


def test_report_with_files_prints_one_line_per_file_and_q_the_answer_alone(finished_toy, tmp_path):
    url = ("--storage", finished_toy)
    r = hpsearch("report", "toy", *url, "--html", "r.html", "--csv", "r.csv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["wrote r.html (2.0 MB)", "wrote r.csv (28 trials)"]
    assert r.stderr == ""

    r = hpsearch("report", "toy", *url, "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 1 and r.stdout.startswith("best loss ")
    assert r.stderr == ""

    r = hpsearch("report", "toy", *url, "--csv", "-", cwd=tmp_path)
    assert r.stdout.startswith("stage,") and "stage coarse" not in r.stdout + r.stderr


def test_launch_q_prints_the_final_line_alone(tmp_path, stub_study):
    from stubs import toy_study

    (tmp_path / "toy.toml").write_text(toy_study(coarse=6, fine=2))
    r = hpsearch("launch", "toy.toml", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", r.stderr
    assert len(r.stdout.splitlines()) == 1 and r.stdout.startswith("best loss "), r.stdout


def test_the_html_page_carries_plotly_once_and_its_data_compactly(finished_toy, tmp_path):
    path = tmp_path / "r.html"
    make_report(ReportConfig(finished_toy, "toy", html=str(path)))
    page = path.read_text()
    assert len(page.encode()) < BUDGET_BYTES, len(page.encode())
    assert page.count("id='hp-plotly'") == 1 and "<script src=" not in page
    block = re.search(r"<script type='application/json' id='hp-figures'>(.*?)</script>", page)
    figures = json.loads(block.group(1))
    assert len(figures["figures"]) == 6 and figures["template"]["layout"]
    assert all("template" not in f["layout"] for f in figures["figures"])  # stored once
    assert all(f'id="{f["id"]}" class="plotly-graph-div"' in page for f in figures["figures"])
    assert ": " not in block.group(1)[:2000]  # no spaces in the JSON
    numbers = re.findall(r"\d+\.\d+", json.dumps(figures["figures"]))  # 6 digits at most
    assert max(len(n.replace(".", "").lstrip("0")) for n in numbers) <= 6
