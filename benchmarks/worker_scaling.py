"""Worker scaling and per-trial overhead of the service, on a real PostgreSQL.

1. Scaling: N worker processes (``hpsearch worker``) share one search whose objective
   sleeps 0.5 s; throughput (trials/s between the first start and the last completion, as
   recorded in the database) against the ideal N / 0.5 s. Target: >= 90% at 16 workers.
2. Overhead: one in-process worker running a no-op objective over 3 parameters, against
   raw ``study.optimize`` suggesting the same 3 parameters, on the same storage, measured
   interleaved. Target: within 1.5x.

    python benchmarks/worker_scaling.py [--quick] [--url postgresql://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import optuna

from hpsearch import store as st
from hpsearch.engine.stages import register_search
from hpsearch.engine.worker import WorkerConfig, run_worker
from hpsearch.objectives.catalog import parse_spec
from hpsearch.store.urls import ENV_STORAGE

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from faults import ADMIN_URL, database  # noqa: E402  (one fresh-database helper for both benchmarks)

SLEEP = 0.5
SPACE = {
    "lr": {"low": 1e-5, "high": 1.0, "log": True},
    "wd": {"low": 1e-6, "high": 1e-2, "log": True},
    "act": {"choices": ["relu", "tanh"]},
}


def sleep_objective(params: dict, epochs: int, report) -> float:
    time.sleep(SLEEP)
    report(1, params["lr"])
    return params["lr"]


def noop_objective(params: dict, epochs: int, report) -> float:
    return params["lr"]


def register(url: str, objective: str, trials: int) -> None:
    spec = parse_spec(
        {
            "name": "bench",
            "objective": objective,
            "metric": "value",
            "space": SPACE,
            "stage": [{"name": "only", "trials": trials}],
        },
        base_dir=str(HERE),
    )
    register_search(st.SearchStore.open(url), spec)


def scaling(admin_url: str, workers: int, per_worker: int) -> float:
    """Fraction of the ideal throughput N workers reach."""
    with database("postgres", admin_url) as url:
        register(url, "worker_scaling:sleep_objective", workers * per_worker)
        env = {**os.environ, ENV_STORAGE: url}
        cmd = [sys.executable, "-m", "hpsearch.cli", "worker", "bench", "--threads", "1",
               "--no-progress"]  # fmt: skip
        procs = [subprocess.Popen(cmd, env=env) for _ in range(workers)]
        for p in procs:
            if p.wait() != 0:
                raise RuntimeError(f"worker exited {p.returncode}")
        return steady_rate(url, "bench/only") / (workers / SLEEP)


def steady_rate(url: str, study: str) -> float:
    """Trials per second while every worker was at work: between the last worker's first
    start and the first worker's last completion. Process start-up (importing Optuna
    takes a second or two, staggered across processes on 2 cores) is not the service's
    throughput, so it is left out."""
    trials = optuna.load_study(study_name=study, storage=url).get_trials()
    by_worker: dict[str, list] = {}
    for t in trials:
        by_worker.setdefault(t.user_attrs["worker"], []).append(t)
    start = max(min(t.datetime_start for t in ts) for ts in by_worker.values())
    end = min(max(t.datetime_complete for t in ts) for ts in by_worker.values())
    if end <= start:
        raise RuntimeError("workers never all ran at once; raise the trials per worker")
    # Each trial counts for the share of it that falls inside the window.
    done = 0.0
    for t in trials:
        a, b = max(t.datetime_start, start), min(t.datetime_complete, end)
        if b > a:
            done += (b - a) / (t.datetime_complete - t.datetime_start)
    return done / (end - start).total_seconds()


def per_trial(url: str, study: str) -> float:
    """Seconds per trial between the first start and the last completion, as recorded in
    the database: the steady state, without process start-up or one-time imports."""
    trials = optuna.load_study(study_name=study, storage=url).get_trials()
    start = min(t.datetime_start for t in trials)
    end = max(t.datetime_complete for t in trials)
    return (end - start).total_seconds() / len(trials)


def overhead(admin_url: str, trials: int) -> tuple[float, float]:
    """Seconds per trial: hpsearch's worker vs raw study.optimize, no-op objective."""
    with database("postgres", admin_url) as url:
        register(url, "worker_scaling:noop_objective", trials)
        storage = optuna.storages.RDBStorage(url, engine_kwargs=st.engine_kwargs(url))
        run_worker(WorkerConfig(url, "bench"))
        ours = per_trial(url, "bench/only")

        raw = optuna.create_study(storage=storage, study_name="raw")

        def objective(trial: optuna.Trial) -> float:
            lr = trial.suggest_float("lr", 1e-5, 1.0, log=True)
            trial.suggest_float("wd", 1e-6, 1e-2, log=True)
            trial.suggest_categorical("act", ["relu", "tanh"])
            trial.report(lr, 1)
            return lr

        raw.optimize(objective, n_trials=trials)
        return ours, per_trial(url, "raw")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=ADMIN_URL)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1-2 workers")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    counts = [1, 2] if args.quick else [1, 2, 4, 8, 16]
    per_worker = 4 if args.quick else 30
    runs = 1 if args.quick else args.runs

    print("| workers | trials | throughput vs ideal (median) | runs |")
    print("| ---: | ---: | ---: | --- |")
    for n in counts:
        fractions = [scaling(args.url, n, per_worker) for _ in range(runs)]
        shown = ", ".join(f"{f:.1%}" for f in fractions)
        print(f"| {n} | {n * per_worker} | {statistics.median(fractions):.1%} | {shown} |")

    trials = 20 if args.quick else 200
    pairs = [overhead(args.url, trials) for _ in range(runs)]
    ours = statistics.median(p[0] for p in pairs)
    raw = statistics.median(p[1] for p in pairs)
    print()
    print("| no-op objective, per trial | hpsearch worker | raw study.optimize | ratio |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| median of {runs} x {trials} trials | {ours * 1e3:.1f} ms | {raw * 1e3:.1f} ms "
          f"| {ours / raw:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
