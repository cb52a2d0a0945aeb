"""Editing a study file and launching again, through the CLI as a user does: each applied
edit on its own line, the report's history, refusals with both ways out (exit 2), and the
report's edge warning pasted into the file as it prints it."""

from __future__ import annotations

import pytest
from cli_runner import hpsearch
from stored import stage_study
from stubs import toy_study

EDGE = """
name = "edge"
objective = "stubs:quadratic"
metric = "loss"
seed = 0
[space.lr]
low = 1e-2
high = 1.0
log = true
[space.act]
choices = ["relu", "tanh"]
[[stage]]
name = "coarse"
trials = 12
epochs = 1
"""


@pytest.mark.slow  # six commands; tests/test_relaunch.py applies the same edits in-process
def test_an_edit_is_applied_with_its_line_and_shown_by_report(tmp_path):
    study = tmp_path / "toy.toml"
    study.write_text(toy_study(coarse=12, fine=4))
    assert hpsearch("launch", str(study), cwd=tmp_path).returncode == 0

    study.write_text(toy_study(coarse=16, fine=4))
    r = hpsearch("launch", str(study), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "edited search toy: coarse trials 12 -> 16 (4 slots appended)" in r.stderr
    assert "note: stage fine was prepared from stage coarse's results before this edit" in r.stderr
    assert "hpsearch retry toy --from-stage fine" in r.stderr
    assert "4 completed" in r.stderr and "stage coarse: 16/16 trials" in r.stdout

    r = hpsearch("report", "toy", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    head = r.stdout.split("\n\n")[0].splitlines()
    assert head[1] == "  state: complete" and head[2].startswith("  trials: 20 planned")
    assert head[3].startswith("  launched 20")
    assert head[4].startswith("  edited 20") and head[4].endswith(
        ": coarse trials 12 -> 16 (4 slots appended)"
    )

    r = hpsearch("launch", str(study), cwd=tmp_path)  # the same file again: nothing to apply
    assert r.returncode == 0 and "edited" not in r.stderr and "resuming" in r.stderr

    # the note's way to narrow the fine stage from all 16: re-prepare it, launch again
    r = hpsearch("retry", "toy", "--from-stage", "fine", "--yes", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = hpsearch("launch", str(study), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "of 16), handed to stage fine" in r.stdout and "stage fine: 4/4 trials" in r.stdout


def test_an_incompatible_edit_exits_2_with_the_diff_and_both_ways_out(tmp_path):
    study = tmp_path / "toy.toml"
    study.write_text(toy_study(coarse=6, fine=2))
    assert hpsearch("launch", str(study), cwd=tmp_path).returncode == 0
    study.write_text(toy_study(coarse=6, fine=2).replace('metric = "loss"', 'metric = "acc"'))
    r = hpsearch("launch", str(study), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "metric: stored 'loss', file 'acc' (every stored value is this metric)" in r.stderr
    assert 'give it a new name: name = "toy-2" in the study file' in r.stderr
    assert "delete the stored search first: hpsearch delete toy" in r.stderr
    assert "Traceback" not in r.stderr
    assert (
        "spec_history"
        not in stage_study(f"sqlite:///{tmp_path / 'hpsearch.db'}", "toy", "coarse").user_attrs
    )


def pasted_lines(report: str) -> list[str]:
    """The study file lines an edge warning prints, as a user copies them."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if "add this stage at the end" in line)
    block = []
    for line in lines[start + 1 :]:
        if not line.startswith("    "):
            break
        block.append(line.strip())
    return block


def test_the_report_prints_the_lines_that_follow_its_edge_warning(tmp_path):
    study = tmp_path / "edge.toml"
    study.write_text(EDGE)
    r = hpsearch("launch", str(study), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "widen lr below 0.01 and search again" in r.stdout
    block = pasted_lines(r.stdout)
    assert block[:5] == [
        "[[stage]]",
        'name = "coarse-2"',
        "trials = 12",
        "epochs = 1",
        'sampler = "random"',
    ]
    assert block[5] == "[stage.space.lr]" and block[6] == "low = 0.001"  # a decade past
    high = float(block[7].removeprefix("high = "))

    study.write_text(EDGE + "\n".join(block) + "\n")
    r = hpsearch("launch", str(study), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "edited search edge: stage coarse-2 appended: 12 trials x 1 epoch(s), random" in (
        r.stderr
    )
    url = f"sqlite:///{tmp_path / 'hpsearch.db'}"
    lr = stage_study(url, "edge", "coarse-2").user_attrs["space"]["lr"]
    assert lr == {"low": 0.001, "high": high, "log": True}
    assert "stage coarse-2: 12/12 trials" in r.stdout
