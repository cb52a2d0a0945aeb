"""What early stopping costs the service per trial, against the same stage without it.

One in-process worker runs a one-stage search of a no-op objective that reports every
epoch (9 epochs, a curve that improves by epoch, so ASHA stops most runs after its first
rung and their saved epochs buy more runs): once with ``stop_early = "asha"``, once with
``"median"`` and once without, on the same storage, interleaved over the rounds. The figure
is milliseconds of wall clock per trial run (a stopped run counts as one trial) and per
epoch reported, medians over the rounds; the ratio is against the stage without early
stopping, measured in the same round. The search's own start-up (imports, registering,
preparing the slots) is outside the timing.

    python benchmarks/stop_early_overhead.py [--slots 300] [--rounds 3] [--backend sqlite|postgres]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from faults import ADMIN_URL, database  # noqa: E402  (one fresh-database helper)

EPOCHS = 9
RULES = ("none", "asha", "median")


def improving(params: dict, epochs: int, report) -> float:
    """A curve that falls by epoch; ``x`` sets its level, so early epochs rank runs."""
    value = params["x"]
    for epoch in range(1, epochs + 1):
        value = params["x"] + 1.0 / epoch
        report(epoch, value)
    return value


def run(url: str, rule: str, slots: int) -> tuple[float, int, int]:
    """Seconds the worker took to run the stage, trials run, epochs reported."""
    from hpsearch import store as st
    from hpsearch.engine.stages import prepare_stage, register_search
    from hpsearch.engine.worker import WorkerConfig, run_worker
    from hpsearch.objectives.catalog import parse_spec

    stage = {"name": "s", "trials": slots, "epochs": EPOCHS, "sampler": "random"}
    if rule != "none":
        stage["stop_early"] = rule
    spec = parse_spec(
        {
            "name": f"bench-{rule}",
            "objective": "stop_early_overhead:improving",
            "metric": "loss",
            "space": {"x": {"low": 0.0, "high": 1.0}},
            "stage": [stage],
        },
        base_dir=str(HERE),
    )
    store = st.SearchStore.open(url)
    register_search(store, spec)
    prepare_stage(store, spec, 0, owner="bench")  # slots queued before the clock starts
    start = time.perf_counter()
    stats = run_worker(WorkerConfig(url, spec.name), objective=improving)
    seconds = time.perf_counter() - start
    trials = store.find_stage(spec.name, "s").study.get_trials(deepcopy=False)
    return seconds, stats.ran, sum(len(t.intermediate_values) for t in trials)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--url", default=ADMIN_URL, help="PostgreSQL to create databases in")
    args = parser.parse_args()
    per_trial: dict[str, list[float]] = {r: [] for r in RULES}
    per_epoch: dict[str, list[float]] = {r: [] for r in RULES}
    ratio: dict[str, list[float]] = {r: [] for r in RULES}
    ran: dict[str, list[int]] = {r: [] for r in RULES}
    for _ in range(args.rounds):
        base = None
        for rule in RULES:
            with database(args.backend, args.url) as url:
                seconds, trials, epochs = run(url, rule, args.slots)
            ms = 1000 * seconds / trials
            base = ms if rule == "none" else base
            per_trial[rule].append(ms)
            per_epoch[rule].append(1000 * seconds / epochs)
            ratio[rule].append(ms / base)
            ran[rule].append(trials)
    print(f"{args.slots} slots x {EPOCHS} epochs, {args.backend}, {args.rounds} rounds\n")
    print("| stop_early | trials run | ms per trial | ms per epoch | per trial vs none |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for rule in RULES:
        print(
            f"| {rule} | {statistics.median(ran[rule]):.0f} "
            f"| {statistics.median(per_trial[rule]):.1f} "
            f"| {statistics.median(per_epoch[rule]):.1f} "
            f"| {statistics.median(ratio[rule]):.2f}x |"
        )


if __name__ == "__main__":
    main()
