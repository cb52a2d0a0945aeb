"""The worker's timeline (``$HPSEARCH_TIMINGS``): where each worker's time went, as the
wall-clock benchmark reads it. Real worker processes on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from stubs import toy_study
from test_workers import assert_exact, finish, register, start_worker, trials_of

from hpsearch.engine.worker import ENV_TIMINGS


def test_each_worker_writes_its_timeline_and_the_budgets_stay_exact(
    storage_url, stub_study, tmp_path, monkeypatch
):
    folder = tmp_path / "timings"
    folder.mkdir()
    monkeypatch.setenv(ENV_TIMINGS, str(folder))
    path = stub_study(toy_study(objective="sleepy", coarse=6, fine=3))
    register(storage_url, path)
    procs = [start_worker(storage_url) for _ in range(2)]
    outs = finish(procs)
    assert all("Traceback" not in o for o in outs), outs
    assert_exact(storage_url)

    records = {r["pid"]: r for r in (json.loads(f.read_text()) for f in folder.glob("*.json"))}
    assert set(records) == {p.pid for p in procs}
    for stage in ("coarse", "fine"):
        for pid, record in records.items():
            ran = [
                t for t in trials_of(storage_url, f"toy/{stage}")
                if t.user_attrs["worker"].endswith(f":{pid}")
            ]  # fmt: skip
            trials = [e for e in record["events"] if e[0] == "trial" and e[1] == stage]
            assert len(trials) == len(ran)
    for record in records.values():
        # the kernel's boot time (btime) is whole seconds: the start is known to within 1 s
        assert record["process_started"] - 1.0 <= record["entered"] <= record["left"]
        trials = sorted(e for e in record["events"] if e[0] == "trial")
        for (_, _, a, b), (_, _, c, _) in zip(trials, trials[1:], strict=False):
            assert a <= b <= c  # one trial at a time
        kinds = {e[0] for e in record["events"]}
        # a worker that starts late on a loaded machine may find every slot taken
        assert {"prepare", "claim"} <= kinds
        assert ("trial" in kinds) == ("objective" in kinds)
    assert any("trial" in {e[0] for e in r["events"]} for r in records.values())
