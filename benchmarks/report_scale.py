"""How long ``hpsearch report`` takes on a 10,000-trial search, and how big the HTML is.

    python benchmarks/report_scale.py            # 10,000 trials, median of 5 runs
    python benchmarks/report_scale.py --quick    # 1,000 trials, 1 run (smoke)

The trials are made with ``study.add_trials`` (no training): a two-stage search whose stage
studies carry the attrs a worker writes, and trials with CNN-like user attrs (diagnostics
and per-epoch curves), so the report does all its work. Timed, each the median of
``--runs`` runs: reading the search back (the floor every report pays), the terminal report
(read + importance + warnings), and the full report (plus HTML, CSV and JSON).
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

TOML = """
name = "scale"
objective = "cnn"
metric = "val_loss"
seed = 0
[space.lr]
low = 1e-5
high = 1.0
log = true
[space.weight_decay]
low = 1e-6
high = 1e-1
log = true
[space.dropout]
low = 0.0
high = 0.6
[space.activation]
choices = ["relu", "tanh"]
[[stage]]
name = "coarse"
trials = {coarse}
epochs = 1
[[stage]]
name = "fine"
trials = {fine}
epochs = 3
"""


def fake_trial(params: dict, epochs: int, rng: np.random.Generator, dists: dict, kind: str):
    """A finished trial whose loss is best near lr = 10^-2.5. ``stub``: the attrs a worker
    records for a plain objective; ``cnn``: also the built-in's diagnostics and curves."""
    import optuna

    x = math.log10(params["lr"]) + 2.5
    loss = 0.1 + x * x + 0.05 * (params["activation"] == "tanh") + rng.normal(0, 0.05) ** 2
    diverged = params["lr"] > 0.3 and rng.random() < 0.7
    curve = [loss * (1 + 1.0 / e) for e in range(1, epochs + 1)]
    attrs: dict = {
        "epochs": epochs,
        "slot": 0,
        "stage": "s",
        "seed": 1,
        "worker": "w",
        "seconds": 0.1,
    }
    if kind == "stub":
        diverged = False
    else:
        attrs |= {
            "epochs_run": epochs,
            "diverged": bool(diverged),
            "not_learning": bool(x < -2),
            "flat_then_drop": False,
            "overfit_gap": float(rng.normal(0.02, 0.02)),
            "dead_unit_fraction": 0.0,
            "act_std_layer": [0.6, 0.58],
            "train_accuracy": 0.9,
            "val_accuracy": 0.88,
            "curve_train_loss": curve,
            "curve_val_loss": [c * 1.1 for c in curve],
            "curve_train_accuracy": [0.9] * epochs,
            "curve_val_accuracy": [0.88] * epochs,
        }
    value = 2.3 if diverged else curve[-1]
    return optuna.trial.create_trial(
        params=params,
        distributions=dists,
        value=value,
        user_attrs=attrs,
        intermediate_values={e + 1: v for e, v in enumerate(curve)},
    )


def make_search(url: str, coarse: int, fine: int, kind: str = "stub") -> None:
    """Register the search and fill both stages as finished, as workers would leave them."""
    import tomllib

    import optuna

    from hpsearch import store as st
    from hpsearch.core.points import random_points
    from hpsearch.engine.stages import open_stage, plan_stage, register_search, stage_attrs
    from hpsearch.objectives.catalog import parse_spec

    spec = parse_spec(tomllib.loads(TOML.format(coarse=coarse, fine=fine)))
    store = st.SearchStore.open(url)
    register_search(store, spec)
    rng = np.random.default_rng(0)
    space, previous = None, None
    for index, stage in enumerate(spec.stages):
        plan = plan_stage(spec, index, space, previous) if index else plan_stage(spec, 0)
        stage_ref = open_stage(store, spec, index)
        study = optuna.load_study(study_name=stage_ref.name, storage=url)
        for key, value in {**stage_attrs(spec, index, plan), st.ATTR_READY: True}.items():
            study.set_user_attr(key, value)
        dists = {p.name: p.to_distribution() for p in plan.space}
        points = random_points(plan.space, stage.trials, plan.seed)
        study.add_trials([fake_trial(p, stage.epochs, rng, dists, kind) for p in points])
        space, previous = plan.space, store.records(stage_ref, stage.name)


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10_000, help="trials in all (4/5 coarse)")
    parser.add_argument("--runs", type=int, default=5, help="runs per timing (median)")
    parser.add_argument("--quick", action="store_true", help="1,000 trials, 1 run")
    parser.add_argument(
        "--kind", choices=("stub", "cnn"), default="stub", help="user attrs per trial"
    )
    args = parser.parse_args()
    if args.quick:
        args.trials, args.runs = 1000, 1

    from hpsearch.report.analysis import analyze
    from hpsearch.report.build import ReportConfig, make_report
    from hpsearch.report.importance import param_importance
    from hpsearch.report.search import load_search
    from hpsearch.report.terminal import format_report
    from hpsearch.store import SearchStore

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'scale.db'}"
        start = time.perf_counter()
        make_search(url, coarse=args.trials * 4 // 5, fine=args.trials // 5, kind=args.kind)
        print(f"made {args.trials} trials in {time.perf_counter() - start:.1f} s")
        store = SearchStore.open(url)
        out = Path(tmp)
        config = ReportConfig(
            url, "scale", str(out / "r.html"), str(out / "r.csv"), str(out / "r.json")
        )
        read = median_time(lambda: load_search(store, "scale"), args.runs)
        terminal = median_time(
            lambda: format_report(analyze(load_search(store, "scale"))), args.runs
        )
        full = median_time(lambda: make_report(config), args.runs)
        view = load_search(store, "scale")
        coarse = view.stages[0]
        space = coarse.space
        fanova = median_time(
            lambda: param_importance(coarse.records, space, "minimize", "fanova"), args.runs
        )
        ped = median_time(
            lambda: param_importance(coarse.records, space, "minimize", "ped-anova"), args.runs
        )
        size = {k: (out / f"r.{k}").stat().st_size / 1e6 for k in ("html", "csv", "json")}
    print(f"trials: {args.trials} ({args.kind} attrs), median of {args.runs} run(s)")
    print(f"  read the search back:          {read:6.2f} s")
    print(f"  terminal report:               {terminal:6.2f} s  ({terminal / read:.1f}x the read)")
    print(f"  full report (+HTML, CSV, JSON): {full:6.2f} s  ({full / read:.1f}x the read)")
    print(
        f"  importance of {len(coarse.records)} trials: fanova {fanova:.2f} s, ped-anova {ped:.2f} s"
    )
    print(f"  HTML {size['html']:.1f} MB, CSV {size['csv']:.1f} MB, JSON {size['json']:.1f} MB")


if __name__ == "__main__":
    main()
