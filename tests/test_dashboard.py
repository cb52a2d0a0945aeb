"""``hpsearch dashboard``: optuna-dashboard on a finished search, over HTTP and in Chromium.

The server runs in a thread (or, for the command line, in a real process) on a free port;
the browser test drives Debian's headless Chromium. Screenshots are kept in
``test-artifacts/`` for a person to look at.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna_dashboard import get_note
from stored import stage_study
from stubs import toy_study

from hpsearch import store as st
from hpsearch.engine.stages import register_search
from hpsearch.engine.worker import WorkerConfig, run_worker
from hpsearch.objectives.catalog import load_spec
from hpsearch.report.note import on_worker_event
from hpsearch.report.search import load_search
from hpsearch.tasks.dashboard import (
    DashboardConfig,
    ReadOnly,
    is_loopback,
    make_dashboard_server,
)

ARTIFACTS = Path(__file__).parents[1] / "test-artifacts"
COARSE, FINE = 12, 4


def finished_search(url: str, folder: Path) -> None:
    """A two-stage toy search, run to the end in this process; tanh trials fail."""
    path = folder / "study.toml"
    path.write_text(toy_study(objective="crash_on_tanh", coarse=COARSE, fine=FINE))
    spec = load_spec(path)
    register_search(st.SearchStore.open(url), spec)
    run_worker(WorkerConfig(url, spec.name), on_event=on_worker_event)  # notes, as api.run


@pytest.fixture(scope="module")
def finished_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("search")
    finished_search(f"sqlite:///{folder / 'search.db'}", folder)
    return folder / "search.db"


@pytest.fixture
def search_url(finished_db: Path, tmp_path: Path) -> str:
    """A private copy of the finished search: tests that try to write get their own."""
    return f"sqlite:///{copy_db(finished_db, tmp_path / 'search.db')}"


def copy_db(source: Path, target: Path) -> Path:
    """SQLite's backup API, not a file copy: the search's last writes may still sit in the
    write-ahead log beside the file."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return target


@contextmanager
def serving(url: str, allow_writes: bool = False) -> Iterator[str]:
    server = make_dashboard_server(DashboardConfig(url, port=0, allow_writes=allow_writes))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def call(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    """(status, decoded JSON or None) of one request; HTTP errors are answers, not raises."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    return status, json.loads(raw) if raw else None


def studies(base: str) -> dict[str, int]:
    status, body = call("GET", f"{base}/api/studies")
    assert status == 200
    return {s["study_name"]: s["study_id"] for s in body["study_summaries"]}


def attrs(items: list[dict[str, str]]) -> dict[str, str]:
    return {a["key"]: a["value"] for a in items}


def test_api_shows_stages_notes_metric_names_and_learning_curves(storage_url, tmp_path):
    finished_search(storage_url, tmp_path)
    with serving(storage_url) as base:
        ids = studies(base)
        assert set(ids) == {"toy/coarse", "toy/fine"}
        details = {}
        for name, study_id in ids.items():
            status, details[name] = call("GET", f"{base}/api/studies/{study_id}")
            assert status == 200
    for name, epochs, trials in (("toy/coarse", 1, COARSE), ("toy/fine", 2, FINE)):
        d = details[name]
        stage = name.split("/")[1]
        assert d["objective_names"] == ["loss"] and d["directions"] == ["minimize"]
        assert d["note"]["body"].startswith(f"## Stage `{stage}` of search `toy`")
        # the coarse stage hands a region on; the last stage states the search's region
        heading = "handed on to stage `fine`" if stage == "coarse" else "(the last stage"
        assert f"### Promising region {heading}" in d["note"]["body"]
        assert [g["id"] for g in d["plotly_graph_objects"]] == ["region"]
        study_attrs = attrs(d["user_attrs"])
        assert study_attrs["stage"] == stage and study_attrs["epochs"] == str(epochs)
        assert set(json.loads(study_attrs["space"])) == {"lr", "wd", "act"}
        assert len(d["trials"]) == trials
        for t in d["trials"]:
            trial_attrs = attrs(t["user_attrs"])
            assert trial_attrs["stage"] == stage and ":" in trial_attrs["worker"]  # host:pid
            if t["state"] == "Complete":
                assert [v["step"] for v in t["intermediate_values"]] == list(range(1, epochs + 1))
                assert float(trial_attrs["wall_seconds"]) >= 0
            else:
                assert t["state"] == "Fail"
                assert trial_attrs["fail_reason"].startswith("RuntimeError: tanh")
    region = json.loads(attrs(details["toy/fine"]["user_attrs"])["region"])
    assert region["kept"] and set(region["params"]) == {"lr", "wd", "act"}


def snapshot(url: str) -> dict[str, Any]:
    """What a reviewer reads: every stage's trials (state, value, params) and note."""
    view = load_search(st.SearchStore.open(url), "toy")
    return {
        "studies": sorted(optuna.get_all_study_names(url)),
        "trials": [
            (r.stage, r.number, r.state, r.value, r.params) for v in view.stages for r in v.records
        ],
        "notes": [get_note(stage_study(url, "toy", v.stage.name)) for v in view.stages],
    }


def writes(base: str, ids: dict[str, int], trial_id: int) -> list[tuple[str, str, Any]]:
    """Requests through which optuna-dashboard writes: delete, note, create, rename, trial
    attrs, tell, schema upgrade."""
    coarse = ids["toy/coarse"]
    return [
        ("DELETE", f"{base}/api/studies/{coarse}", None),
        ("PUT", f"{base}/api/studies/{coarse}/note", {"version": 2, "body": "overwritten"}),
        ("POST", f"{base}/api/studies", {"study_name": "intruder", "directions": ["minimize"]}),
        ("POST", f"{base}/api/studies/{ids['toy/fine']}/rename", {"study_name": "renamed"}),
        ("POST", f"{base}/api/trials/{trial_id}/user-attrs", {"user_attrs": {"x": 1}}),
        ("POST", f"{base}/api/trials/{trial_id}/tell", {"state": "Complete", "values": [0.0]}),
        ("POST", f"{base}/incompatible-rdb-schema", None),
    ]


def test_read_only_refuses_every_write_and_the_search_stays_intact(search_url):
    before = snapshot(search_url)
    with serving(search_url) as base:
        ids = studies(base)
        for method, url, body in writes(base, ids, trial_id=1):
            status, answer = call(method, url, body)
            assert status == 403, (method, url)
            assert "--allow-writes" in answer["reason"]
        assert call("HEAD", f"{base}/api/studies")[0] == 200
        assert studies(base) == ids
    assert snapshot(search_url) == before


def test_allow_writes_lets_a_reviewer_edit_and_delete(search_url):
    with serving(search_url, allow_writes=True) as base:
        ids = studies(base)
        note = {"version": 2, "body": "reviewed: keep lr near 1e-3"}
        assert call("PUT", f"{base}/api/studies/{ids['toy/coarse']}/note", note)[0] == 204
        assert call("DELETE", f"{base}/api/studies/{ids['toy/fine']}")[0] == 204
        assert set(studies(base)) == {"toy/coarse"}
    coarse = stage_study(search_url, "toy", "coarse")
    assert get_note(coarse) == "reviewed: keep lr near 1e-3"


def test_read_only_middleware_answers_json_403_without_calling_the_app():
    called = []

    def app(environ, start_response):
        called.append(environ["REQUEST_METHOD"])
        start_response("200 OK", [])
        return [b"ok"]

    answers = []
    wrapped = ReadOnly(app)
    for method in ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "post"):
        body = wrapped(
            {"REQUEST_METHOD": method, "PATH_INFO": "/api/x"},
            lambda status, headers, m=method: answers.append((m, status, dict(headers))),
        )
        if answers[-1][1].startswith("403"):
            assert answers[-1][2]["Content-Type"] == "application/json"
            assert "--allow-writes" in json.loads(b"".join(body))["reason"]
    assert called == ["GET", "HEAD", "OPTIONS"]


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("myhost.example", False),
    ],
)
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback


def hpsearch_cli(*args: str, cwd: Path, sigint_ignored: bool = False) -> subprocess.Popen:
    """``hpsearch dashboard ARGS``; ``sigint_ignored`` starts it as a background job or
    ``nohup`` would, with SIGINT ignored (which a child inherits)."""
    return subprocess.Popen(
        [sys.executable, "-m", "hpsearch.cli", "dashboard", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        if sigint_ignored
        else None,
    )


@pytest.mark.parametrize(
    "sigint_ignored",
    [False, pytest.param(True, marks=pytest.mark.slow)],
    ids=["foreground", "sigint-ignored"],
)
def test_cli_serves_the_default_storage_until_ctrl_c(finished_db, tmp_path, sigint_ignored):
    copy_db(finished_db, tmp_path / "hpsearch.db")  # the default storage, found by cwd
    proc = hpsearch_cli("--port", "0", cwd=tmp_path, sigint_ignored=sigint_ignored)
    try:
        line = proc.stderr.readline()
        assert "(read-only; --allow-writes to edit)" in line, line
        base = re.search(r"(http://127\.0\.0\.1:\d+)/dashboard", line).group(1)
        assert set(studies(base)) == {"toy/coarse", "toy/fine"}
        status, _ = call("DELETE", f"{base}/api/studies/1")
        assert status == 403
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
    assert "warning" not in proc.stderr.read()


def test_cli_warns_on_a_public_address_and_refuses_a_taken_port(finished_db, tmp_path):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = hpsearch_cli(
            "--storage",
            f"sqlite:///{finished_db}",
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
            cwd=tmp_path,
        )
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "warning: serving on 0.0.0.0" in err and "no authentication" in err
    assert f"cannot listen on 0.0.0.0:{port}" in err and "--port" in err


def test_cli_refuses_a_missing_sqlite_file_without_creating_it(tmp_path):
    proc = hpsearch_cli("--storage", "sqlite:///nope.db", cwd=tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "no such SQLite file nope.db" in err
    assert not (tmp_path / "nope.db").exists()


# ------------------------------------------------------------------ a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(url: str, profile: Path, screenshot: Path | None = None) -> str:
    """The page's text after headless Chromium rendered it (React, plotly and all).

    ``--virtual-time-budget`` lets the page's scripts run 10 s of virtual time, and pauses
    that clock while requests are pending, so the API answers are in before the DOM dump.
    """
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",  # root in a container; the page is our own dashboard
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        "--window-size=1400,1800",
        "--dump-dom",
    ]
    if screenshot is not None:
        args.append(f"--screenshot={screenshot}")
    done = subprocess.run([*args, url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", done.stdout, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", text)))


def test_study_pages_render_in_headless_chromium(search_url, tmp_path):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("no chromium on CI: .ci/run must install Debian's chromium")
        pytest.skip("no chromium binary: apt-get install chromium")
    ARTIFACTS.mkdir(exist_ok=True)
    with serving(search_url) as base:
        coarse = studies(base)["toy/coarse"]
        _, detail = call("GET", f"{base}/api/studies/{coarse}")
        failed = next(t["number"] for t in detail["trials"] if t["state"] == "Fail")
        page = f"{base}/dashboard/studies/{coarse}"
        study = chromium(page, tmp_path / "profile", ARTIFACTS / "dashboard-study.png")
        trials = chromium(f"{page}/trials?numbers={failed}", tmp_path / "profile")
        note = chromium(f"{page}/note", tmp_path / "profile", ARTIFACTS / "dashboard-note.png")
    assert "toy/coarse" in study and "Intermediate values" in study
    assert "coarse: the region of its top" in study  # the region figure, drawn by plotly
    assert f"{COARSE} Trials" in trials
    assert f"Trial {failed} (trial_id" in trials and "fail_reason RuntimeError: tanh" in trials
    assert "Stage coarse of search toy" in note
    assert "Promising region handed on to stage fine" in note
    assert "RuntimeError: tanh is not supported by this stub" in note
    for shot in ("dashboard-study.png", "dashboard-note.png"):
        assert (ARTIFACTS / shot).stat().st_size > 20_000  # a rendered page, not a blank one
