"""Wall clock of a whole search on 4 workers against 1, stage barriers included.

The default plan on a benchmark problem whose every epoch sleeps a fixed time
(``problems.EPOCH_SECONDS``), launched as a user launches it (``hpsearch launch FILE
--workers N`` on SQLite). The ideal for N workers is the epochs the search ran times the
epoch cost, over N: a barrier that idles workers (the end of a stage, waiting for its last
long runs) shows up as the gap. The span is read from the database (first trial start to
last trial end), so process start-up is left out; the launch's own wall time is shown too.

    python benchmarks/wall_clock.py [--problem branin] [--epoch-seconds 0.1] [--seed 0]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from problems import EPOCH_SECONDS, PROBLEMS, study_text  # noqa: E402


def run(problem_name: str, workers: int, epoch_s: float, seed: int) -> dict:
    problem = PROBLEMS[problem_name]
    problem = dataclasses.replace(problem, fixed={**problem.fixed, EPOCH_SECONDS: epoch_s})
    budget = problem.full_runs * problem.max_epochs
    text = study_text(problem, budget=budget, max_epochs=problem.max_epochs, seed=seed)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "study.toml"
        path.write_text(text)
        url = f"sqlite:///{folder}/search.db"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "hpsearch.cli", "launch", str(path), "--storage", url,
             "--workers", str(workers)],
            env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        wall = time.perf_counter() - start
        starts, ends, epochs = [], [], 0
        for summary in optuna.get_all_study_summaries(url):
            for t in optuna.load_study(study_name=summary.study_name, storage=url).trials:
                starts.append(t.datetime_start)
                ends.append(t.datetime_complete)
                epochs += int(t.user_attrs.get("epochs_run", t.user_attrs["epochs"]))
    span = (max(ends) - min(starts)).total_seconds()
    ideal = epochs * epoch_s / workers
    return {"workers": workers, "epochs": epochs, "span": span, "wall": wall, "ideal": ideal}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problem", default="branin", choices=list(PROBLEMS))
    ap.add_argument("--epoch-seconds", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    args = ap.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = [run(args.problem, n, args.epoch_seconds, args.seed) for n in args.workers]
    print(f"{args.problem}, default plan, seed {args.seed}, {args.epoch_seconds:g} s per epoch\n")
    print("| workers | epochs run | ideal | search span | vs ideal | launch wall time |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['workers']} | {r['epochs']} | {r['ideal']:.1f} s | {r['span']:.1f} s | "
            f"{r['ideal'] / r['span']:.0%} | {r['wall']:.1f} s |"
        )
    one, many = rows[0], rows[-1]
    speedup = one["span"] / many["span"]
    print(
        f"\n{many['workers']} workers vs {one['workers']}: {speedup:.2f}x faster "
        f"({speedup / (many['workers'] / one['workers']):.0%} of the ideal "
        f"{many['workers'] / one['workers']:g}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
