"""``hpsearch report NAME --html --csv --json`` in a real process, on a finished stub search."""

from __future__ import annotations

import csv
import json

from cli_runner import hpsearch


def test_report_writes_html_csv_and_json_with_one_row_per_trial(finished_toy, tmp_path):
    r = hpsearch(
        "report",
        "toy",
        "--storage",
        finished_toy,
        "--html",
        "r.html",
        "--csv",
        "r.csv",
        "--json",
        "r.json",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "stage coarse" not in r.stdout  # where the files went, not the report again
    assert "wrote r.html" in r.stdout and "wrote r.csv (28 trials)" in r.stdout

    with open(tmp_path / "r.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 28
    assert list(rows[0])[:12] == [
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
    ]
    assert {"param_lr", "param_wd", "param_act", "attr_seed", "attr_worker"} <= set(rows[0])
    assert [r["stage"] for r in rows].count("fine") == 8
    assert {r["epochs"] for r in rows if r["stage"] == "fine"} == {"2.0"}

    trials = json.loads((tmp_path / "r.json").read_text())
    assert len(trials) == 28
    assert trials[-1]["intermediate"] == {"1": trials[-1]["value"] + 0.5, "2": trials[-1]["value"]}

    page = (tmp_path / "r.html").read_text()
    assert "<script src=" not in page and "<link" not in page  # plotly.js is inline: offline
    assert page.count("plotly-graph-div") >= 5  # progress, pair, 3 slices (+ curves)
    assert page.count("<tr><td data-v='coarse'>") == 20


def test_report_refuses_a_missing_output_folder_before_work(finished_toy, tmp_path):
    r = hpsearch(
        "report", "toy", "--storage", finished_toy, "--html", "no/such/r.html", cwd=tmp_path
    )
    assert r.returncode == 2
    assert "--html no/such/r.html: the folder" in r.stderr and "does not exist" in r.stderr


def test_report_of_an_unknown_search_names_the_known_ones(finished_toy, tmp_path):
    r = hpsearch("report", "nope", "--storage", finished_toy, cwd=tmp_path)
    assert r.returncode == 2 and "no search named 'nope' (searches here: toy)" in r.stderr


def test_tables_go_to_stdout_with_dash_and_parquet_reads_back(finished_toy, tmp_path):
    import io

    import pandas as pd

    r = hpsearch("report", "toy", "--storage", finished_toy, "--csv", "-", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))  # stdout holds the table alone
    assert len(rows) == 28 and "stage coarse" not in r.stderr
    assert not (tmp_path / "-").exists()

    r = hpsearch("report", "toy", "--storage", finished_toy, "--json", "-", cwd=tmp_path)
    trials = json.loads(r.stdout)
    assert len(trials) == 28 and isinstance(trials[0]["number"], int)

    r = hpsearch(
        "report", "toy", "--storage", finished_toy, "--parquet", "t.parquet", cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    frame = pd.read_parquet(tmp_path / "t.parquet")
    assert len(frame) == 28 and list(frame["number"]) == [int(row["number"]) for row in rows]


def test_only_one_table_may_go_to_stdout(finished_toy, tmp_path):
    r = hpsearch(
        "report", "toy", "--storage", finished_toy, "--csv", "-", "--json", "-", cwd=tmp_path
    )
    assert r.returncode == 2 and "only one of --csv, --json, --parquet" in r.stderr


def test_html_report_and_list_lead_with_the_state_the_terminal_report_does(finished_toy, tmp_path):
    """One state for a search, worded once (``SearchView.state``): the terminal report's
    state lines lead the HTML page too, and ``list`` shows the same word, for a complete
    search and for one stopped on failures (with the cause)."""
    import html
    import re

    from stored import stage_study

    def state_lines() -> list[str]:
        r = hpsearch("report", "toy", "--storage", finished_toy, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        return [line.strip() for line in r.stdout.split("\n\n")[0].splitlines()[1:]]

    def page_lines() -> str:
        r = hpsearch("report", "toy", "--storage", finished_toy, "--html", "r.html", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        page = (tmp_path / "r.html").read_text()
        return page.split("<h1>hpsearch report: toy</h1>\n", 1)[1]

    def listed_state() -> str:
        r = hpsearch("list", "--storage", finished_toy, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        row = next(line for line in r.stdout.splitlines() if line.startswith("toy "))
        return re.split(r"\s{2,}", row)[1]  # the table's columns: two spaces or more apart

    lines = state_lines()
    assert lines[0] == "state: complete" and lines[1].startswith("trials: 28 planned")
    assert page_lines().startswith(
        "".join(f"<p class='state'>{html.escape(x, quote=True)}</p>\n" for x in lines)
    )
    assert listed_state() == "complete"

    stop = {"rule": "3 failures, no success", "failures": 3, "reason": "KeyError: 'x'", "count": 3}
    stage_study(finished_toy, "toy", "fine").set_user_attr("stopped", stop)
    lines = state_lines()
    assert lines[0] == "state: stopped on failures (stage fine: 3 failures: KeyError: 'x')"
    assert lines[1] == "fix the cause, then launch again (or hpsearch retry toy)"
    assert page_lines().startswith(
        "".join(f"<p class='state'>{html.escape(x, quote=True)}</p>\n" for x in lines)
    )
    assert listed_state() == "stopped on failures (stage fine: 3 failures: KeyError: 'x')"
