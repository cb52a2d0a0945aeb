"""Wall clock of a whole search on N workers against 1, and where every worker's time goes.

The default plan on a benchmark problem whose every epoch sleeps a fixed time
(``problems.EPOCH_SECONDS``; ``--sigma`` spreads run durations log-normally, mean kept),
launched as a user launches it (``hpsearch launch FILE --workers N``) on SQLite or a fresh
PostgreSQL database. Sleeping epochs measure coordination, not CPU: the figures hold on a
loaded machine.

The span is read from the database (first trial start to last trial end). The busy share
is the sum of trial durations over (workers x span). Each worker writes where its time
went (``$HPSEARCH_TIMINGS``, ``hpsearch.engine.worker.Timeline``); inside the span it is
split into:

- trials: running an objective, its epochs' reports left out;
- reporting: the objective's per-epoch reports (a write each, and the pruner's read);
- recording: around the objective (heartbeat start, writing the result);
- barrier: waiting at a stage's end while its last runs still go elsewhere;
- poll lag: still waiting after the stage's last run ended (the growing poll interval);
  both also per stage, with the stage's drain (its first wait to its end: its last runs
  going while a worker has no slot) and how long its last-ending run took;
- preparing: preparing a stage, or waiting for the worker that prepares it;
- claiming: ``store.claim`` calls; checks: stop mark, recovery, open counts, top-up;
- events: the launch's progress callbacks (in-process, 1 worker);
- note: drawing a finished stage's dashboard note (its writer waits for it); other: the rest;
- late start: inside the span, before the worker's first claim;
- done early: inside the span, after the worker stopped.

Start-up (before the span) is shown apart: launch to worker process, process to worker
loop (imports), loop to first trial.

    python benchmarks/wall_clock.py --storage postgres --budget 240 --max-epochs 8 \\
        --epoch-seconds 0.3 --sigma 0.5 --workers 1 4
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import optuna

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from problems import EPOCH_SECONDS, EPOCH_SIGMA, PROBLEMS, study_text  # noqa: E402

PARTS = (
    "trials",
    "reporting",
    "recording",
    "barrier",
    "poll lag",
    "preparing",
    "claiming",
    "checks",
    "events",
    "note",
    "other",
    "late start",
    "done early",
)
NAMES = {
    "prepare": "preparing",
    "claim": "claiming",
    "check": "checks",
    "event": "events",
    "note": "note",
}


@contextlib.contextmanager
def storage(kind: str, folder: str):
    if kind == "sqlite":
        yield f"sqlite:///{folder}/search.db"
        return
    from faults import ADMIN_URL, database

    with database("postgres", ADMIN_URL) as url:
        yield url


def _clip(a: float, b: float, lo: float, hi: float) -> float:
    return max(0.0, min(b, hi) - max(a, lo))


def breakdown(timings: list[dict], finish: dict[str, float], lo: float, hi: float) -> dict:
    """Seconds of each part inside the span [lo, hi], summed over the workers; start-up
    figures per worker (max over workers)."""
    parts: dict[str, float] = defaultdict(float)
    start_up: dict[str, float] = defaultdict(float)
    stages: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for w in timings:
        events = w["events"]
        first_trial = min((e[2] for e in events if e[0] == "trial"), default=w["left"])
        first_claim = min((e[2] for e in events if e[0] == "claim"), default=w["left"])
        accounted = 0.0
        for kind, stage, a, b in events:
            if kind == "wait":
                end = finish.get(stage, hi)
                before = _clip(a, min(b, end), lo, hi)
                after = _clip(max(a, end), b, lo, hi)
                parts["barrier"] += before
                parts["poll lag"] += after
                accounted += before + after
                at = stages[stage]
                at["barrier"] += before
                at["poll lag"] += after
                at["first wait"] = min(at.get("first wait", b), a)
                continue
            if kind == "prepare" and b <= first_claim:
                continue  # the first stage's preparation is start-up
            seconds = _clip(a, b, lo, hi)
            # nested: a trial holds its objective, which holds its reports
            if kind == "trial":
                parts["recording"] += seconds
                accounted += seconds
            elif kind == "objective":
                parts["recording"] -= seconds
                parts["trials"] += seconds
            elif kind == "report":
                parts["trials"] -= seconds
                parts["reporting"] += seconds
            else:
                parts[NAMES[kind]] += seconds
                accounted += seconds
        late = _clip(lo, first_claim, lo, hi)
        early = _clip(w["left"], hi, lo, hi)
        parts["late start"] += late
        parts["done early"] += early
        alive = _clip(max(lo, first_claim), min(hi, w["left"]), lo, hi)
        parts["other"] += max(0.0, alive - accounted)
        if w.get("process_started") and w.get("launched"):
            start_up["launch to process"] = max(
                start_up["launch to process"], w["process_started"] - w["launched"]
            )
            start_up["process to loop"] = max(
                start_up["process to loop"], w["entered"] - w["process_started"]
            )
        start_up["loop to first trial"] = max(
            start_up["loop to first trial"], first_trial - w["entered"]
        )
    return {
        "parts": dict(parts),
        "start_up": dict(start_up),
        "stages": {k: dict(v) for k, v in stages.items()},
    }


def run(args: argparse.Namespace, workers: int) -> dict:
    problem = PROBLEMS[args.problem]
    fixed = {**problem.fixed, EPOCH_SECONDS: args.epoch_seconds}
    if args.sigma:
        fixed[EPOCH_SIGMA] = args.sigma
    problem = dataclasses.replace(problem, fixed=fixed)
    max_epochs = args.max_epochs or problem.max_epochs
    budget = args.budget or problem.full_runs * max_epochs
    text = study_text(problem, budget=budget, max_epochs=max_epochs, seed=args.seed)
    with tempfile.TemporaryDirectory() as folder, storage(args.storage, folder) as url:
        path = Path(folder) / "study.toml"
        path.write_text(text)
        times = Path(folder) / "timings"
        times.mkdir()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)]),
            "HPSEARCH_TIMINGS": str(times),
        }
        launched = time.time()
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "hpsearch.cli", "launch", str(path), "--storage", url,
             "--workers", str(workers)],
            env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        wall = time.perf_counter() - start
        starts, ends, busy, epochs = [], [], 0.0, 0
        finish: dict[str, float] = {}
        last_run: dict[str, float] = {}  # each stage's last-ending run: its duration
        for summary in optuna.get_all_study_summaries(url):
            trials = optuna.load_study(study_name=summary.study_name, storage=url).trials
            done = [t for t in trials if t.datetime_complete is not None]
            for t in done:
                a, b = t.datetime_start.timestamp(), t.datetime_complete.timestamp()
                starts.append(a)
                ends.append(b)
                busy += b - a
                epochs += int(t.user_attrs.get("epochs_run", t.user_attrs.get("epochs", 0)))
            if done and "/" in summary.study_name:
                stage = summary.study_name.split("/", 1)[1]
                last = max(done, key=lambda t: t.datetime_complete)
                finish[stage] = last.datetime_complete.timestamp()
                last_run[stage] = (last.datetime_complete - last.datetime_start).total_seconds()
        timings = []
        for f in sorted(times.glob("*.json")):
            record = json.loads(f.read_text())
            record["launched"] = launched
            timings.append(record)
    lo, hi = min(starts), max(ends)
    span = hi - lo
    result = breakdown(timings, finish, lo, hi)
    for stage, at in result["stages"].items():
        at["drain"] = finish.get(stage, hi) - at.get("first wait", finish.get(stage, hi))
        at["last run"] = last_run.get(stage, 0.0)
    return {
        "workers": workers,
        "epochs": epochs,
        "span": span,
        "wall": wall,
        "ideal": epochs * args.epoch_seconds / workers,
        "busy": busy / (workers * span),
        "processes": len(timings),
        **result,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problem", default="branin", choices=list(PROBLEMS))
    ap.add_argument("--epoch-seconds", type=float, default=0.1)
    ap.add_argument("--sigma", type=float, default=0.0, help="log-normal spread of durations")
    ap.add_argument("--budget", type=int, default=None, help="epochs (default: the problem's)")
    ap.add_argument("--max-epochs", type=int, default=None)
    ap.add_argument("--storage", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    args = ap.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = [run(args, n) for n in args.workers]
    print(
        f"{args.problem}, default plan, budget {args.budget or 'default'}, max_epochs "
        f"{args.max_epochs or 'default'}, seed {args.seed}, {args.epoch_seconds:g} s per epoch, "
        f"sigma {args.sigma:g}, {args.storage}\n"
    )
    print(
        "| workers | epochs run | ideal | search span | vs ideal | busy share | launch wall time |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['workers']} | {r['epochs']} | {r['ideal']:.1f} s | {r['span']:.1f} s | "
            f"{r['ideal'] / r['span']:.0%} | {r['busy']:.0%} | {r['wall']:.1f} s |"
        )
    print("\nWhere the workers' time inside the span went (share of workers x span):\n")
    print("| workers | " + " | ".join(PARTS) + " |")
    print("| ---: |" + " ---: |" * len(PARTS))
    for r in rows:
        total = r["workers"] * r["span"]
        cells = [f"{r['parts'].get(p, 0.0) / total:.1%}" for p in PARTS]
        print(f"| {r['workers']} | " + " | ".join(cells) + " |")
    print(
        "\nThe barrier per stage: worker-seconds waiting before the stage's end and after it"
        " (poll lag), the drain (first wait to the stage's end) and the stage's last run:\n"
    )
    print("| workers | stage | barrier | poll lag | share | drain | last run |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        for stage, at in r["stages"].items():
            share = (at["barrier"] + at["poll lag"]) / (r["workers"] * r["span"])
            print(
                f"| {r['workers']} | {stage} | {at['barrier']:.1f} s | {at['poll lag']:.1f} s | "
                f"{share:.1%} | {at['drain']:.1f} s | {at['last run']:.1f} s |"
            )
    print("\nStart-up before the span (the slowest worker):\n")
    print("| workers | launch to process | process to loop | loop to first trial |")
    print("| ---: | ---: | ---: | ---: |")
    for r in rows:
        s = r["start_up"]
        print(
            f"| {r['workers']} | {s.get('launch to process', float('nan')):.2f} s | "
            f"{s.get('process to loop', float('nan')):.2f} s | "
            f"{s.get('loop to first trial', float('nan')):.2f} s |"
        )
    one = rows[0]
    for many in rows[1:]:
        speedup = one["span"] / many["span"]
        print(
            f"\n{many['workers']} workers vs {one['workers']}: {speedup:.2f}x faster "
            f"({speedup / (many['workers'] / one['workers']):.0%} of the ideal "
            f"{many['workers'] / one['workers']:g}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
