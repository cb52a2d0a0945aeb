"""Search efficiency: hpsearch's default plan against flat baselines and Optuna's samplers.

Every contender gets the same total budget in epochs on the same problems (benchmarks/
problems_b.py: a known optimum, short runs biased and noisy). The hpsearch contenders run
through the real engine (``register_baselines`` + ``run_worker`` in-process, one temporary
SQLite file per problem and seed); Optuna's run on an in-memory study at full fidelity,
TPE + Hyperband counting every epoch it runs, pruned trials included.

Simple regret after each trial is that of the incumbent a user would pick then: the best
value among the runs of the greatest length run so far (a 1-epoch winner only until a
longer run exists), scored by its true full-length value. Reported: median [quartiles]
over seeds at 25%, 50% and 100% of the budget, and the budget each contender needs (median
over seeds, as a fraction) to reach flat random's final median regret.

    python benchmarks/search_efficiency_b.py            # the full run (~10 min on 2 cores)
    python benchmarks/search_efficiency_b.py --quick    # smoke run, well under a minute
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # `problems_b:...` objectives, in this process and in workers

from problems_b import PROBLEMS, Problem, study_text  # noqa: E402

#: (epochs run, value reported last, params) of each trial, in the order they ran.
Event = tuple[int, float, dict[str, Any]]
HPSEARCH = ("hpsearch plan", "hpsearch grid", "hpsearch random")
OPTUNA = ("optuna random", "optuna grid", "optuna tpe", "optuna tpe+hyperband")
CONTENDERS = HPSEARCH + OPTUNA
REFERENCE = "hpsearch random"
FRACTIONS = (0.25, 0.5, 1.0)


def make_spec(problem: Problem, budget: int, max_epochs: int, seed: int) -> Any:
    from hpsearch.spec import parse_spec

    text = study_text(problem, budget=budget, max_epochs=max_epochs, seed=seed)
    return parse_spec(tomllib.loads(text), source=problem.name, base_dir=str(HERE))


def run_hpsearch(spec: Any, folder: str) -> dict[str, list[Event]]:
    """The default plan and both flat baselines, through the real engine on SQLite."""
    from hpsearch import storage as st
    from hpsearch.compare import register_baselines
    from hpsearch.report.search import load_search
    from hpsearch.worker import WorkerConfig, run_worker

    url = f"sqlite:///{folder}/{spec.name}-{spec.seed}.db"
    storage = st.open_storage(url)
    keys = register_baselines(storage, spec)
    out = {}
    for label, key in zip(HPSEARCH, keys, strict=True):
        run_worker(WorkerConfig(url, key))
        view = load_search(storage, key)
        out[label] = [
            (v.stage.epochs, r.value if r.ok else math.inf, r.params)
            for v in view.stages
            for r in sorted(v.records, key=lambda r: r.number)
            if r.finished
        ]
    return out


def _suggest(trial: Any, space: Any) -> dict[str, Any]:
    return {
        p.name: trial.suggest_float(p.name, p.low, p.high, log=p.log)  # all problems: floats
        for p in space
    }


def _grid(space: Any, trials: int) -> dict[str, list[float]]:
    """The largest even grid with at most ``trials`` points, ``k`` values per parameter."""
    k = max(1, int(math.floor(trials ** (1 / len(space)) + 1e-9)))
    return {
        p.name: [p.from_scale(s) for s in np.linspace(p.to_scale(p.low), p.to_scale(p.high), k)]
        for p in space
    }


class _Reporter:
    """The ``report`` handle an objective gets, wired to an Optuna trial."""

    def __init__(self, seed: int, on_value: Callable[[int, float], None]) -> None:
        self.seed = seed
        self._on_value = on_value

    def __call__(self, epoch: int, value: float) -> None:
        self._on_value(epoch, value)


def run_optuna(
    method: str, problem: Problem, spec: Any, budget: int, max_epochs: int, seed: int
) -> list[Event]:
    """One of Optuna's samplers at full fidelity; Hyperband prunes by intermediate values."""
    import optuna

    from hpsearch.loader import load_objective
    from hpsearch.points import derive_seed

    fn = load_objective(problem.objective, str(HERE))
    full_runs = budget // max_epochs
    pruner: optuna.pruners.BasePruner = optuna.pruners.NopPruner()
    n_trials: int | None = full_runs
    if method == "optuna random":
        sampler: optuna.samplers.BaseSampler = optuna.samplers.RandomSampler(seed=seed)
    elif method == "optuna grid":
        grid = _grid(spec.space, full_runs)
        sampler = optuna.samplers.GridSampler(grid, seed=seed)
        n_trials = math.prod(len(v) for v in grid.values())
    else:
        sampler = optuna.samplers.TPESampler(seed=seed)
        if method == "optuna tpe+hyperband":
            pruner = optuna.pruners.HyperbandPruner(
                min_resource=1, max_resource=max_epochs, reduction_factor=3
            )
            n_trials = None  # until the epoch budget is spent
    study = optuna.create_study(sampler=sampler, pruner=pruner)
    events: list[Event] = []
    spent = 0

    def objective(trial: optuna.Trial) -> float:
        nonlocal spent
        params = _suggest(trial, spec.space)
        last: list[float] = []

        def on_value(epoch: int, value: float) -> None:
            nonlocal spent
            spent += 1
            last[:] = [epoch, value]
            trial.report(value, epoch)
            if spent >= budget and epoch < max_epochs:
                study.stop()
                raise optuna.TrialPruned()
            if trial.should_prune():
                raise optuna.TrialPruned()

        try:
            value = fn({**spec.fixed, **params}, max_epochs, _Reporter(seed_of(trial), on_value))
        finally:
            if last:
                events.append((int(last[0]), last[1], params))
        if spent >= budget:
            study.stop()
        return value

    def seed_of(trial: optuna.Trial) -> int:
        return derive_seed(seed, trial.number)

    study.optimize(objective, n_trials=n_trials)
    return events


def regret_trace(events: list[Event], problem: Problem) -> list[tuple[int, float]]:
    """``(epochs spent, regret of the incumbent)`` after each trial."""
    spent, trace = 0, []
    best: tuple[int, float, dict[str, Any]] | None = None
    for epochs, value, params in events:
        spent += epochs
        if math.isfinite(value) and (
            best is None or epochs > best[0] or (epochs == best[0] and value < best[1])
        ):
            best = (epochs, value, params)
        regret = math.inf if best is None else problem.true_value(best[2]) - problem.optimum
        trace.append((spent, max(regret, 0.0)))
    return trace


def regret_at(trace: list[tuple[int, float]], epochs: float) -> float:
    done = [r for spent, r in trace if spent <= epochs + 1e-9]
    return done[-1] if done else math.inf


def epochs_to_reach(trace: list[tuple[int, float]], target: float) -> float:
    return next((spent for spent, r in trace if r <= target), math.inf)


def run_task(task: tuple[str, int, int, int]) -> tuple[str, int, dict[str, list]]:
    """All contenders on one problem and seed (one process of the pool)."""
    name, seed, budget, max_epochs = task
    logging.disable(logging.WARNING)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    problem = PROBLEMS[name]
    spec = make_spec(problem, budget, max_epochs, seed)
    with tempfile.TemporaryDirectory() as folder:
        events = run_hpsearch(spec, folder)
    for method in OPTUNA:
        events[method] = run_optuna(method, problem, spec, budget, max_epochs, seed)
    return name, seed, {m: regret_trace(e, problem) for m, e in events.items()}


def _q(values: list[float], method: str = "linear") -> tuple[float, float, float]:
    with np.errstate(invalid="ignore"):  # inf - inf between two unreached seeds
        q = np.percentile(np.array(values, dtype=float), [25, 50, 75], method=method)
    return float(q[0]), float(q[1]), float(q[2])


def _fmt(x: float) -> str:
    return "—" if not math.isfinite(x) else f"{x:.3g}"


def summarize(
    results: list[tuple[str, int, dict[str, list]]], budget: int
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per problem and contender: regret quartiles at each fraction, budget to reach."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for name in dict.fromkeys(n for n, _, _ in results):
        runs = [traces for n, _, traces in results if n == name]
        # "higher": a median flat random itself reaches in at least half of the seeds
        target = _q([regret_at(t[REFERENCE], budget) for t in runs], "higher")[1]
        table[name] = {
            m: {
                "regret": [_q([regret_at(t[m], f * budget) for t in runs]) for f in FRACTIONS],
                "to_reach": _q([epochs_to_reach(t[m], target) / budget for t in runs])[1],
                "target": target,
            }
            for m in CONTENDERS
        }
    return table


def markdown(table: dict[str, dict[str, dict[str, Any]]], seeds: int, budget: int) -> str:
    lines = []
    for name, rows in table.items():
        target = next(iter(rows.values()))["target"]
        lines += [
            f"### {name} ({seeds} seeds, budget {budget} epochs)",
            "",
            "| contender | regret @25% | regret @50% | regret @100% "
            f"| budget to reach flat random's {_fmt(target)} |",
            "| --- | --- | --- | --- | --- |",
        ]
        for m, row in rows.items():
            cells = [f"{_fmt(med)} [{_fmt(q1)}, {_fmt(q3)}]" for q1, med, q3 in row["regret"]]
            reach = row["to_reach"]
            lines.append(
                f"| {m} | {' | '.join(cells)} | "
                f"{'not reached' if not math.isfinite(reach) else f'{reach:.0%}'} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 seeds, small budget")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per problem (default 10)")
    ap.add_argument("--max-epochs", type=int, default=None, help="epochs of one full run")
    ap.add_argument("--full-runs", type=int, default=None, help="budget in full runs")
    ap.add_argument("--problems", nargs="*", default=list(PROBLEMS), choices=list(PROBLEMS))
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--out", type=Path, help="also write the tables (markdown) here")
    args = ap.parse_args(argv)
    seeds = args.seeds or (2 if args.quick else 10)
    max_epochs = args.max_epochs or (3 if args.quick else 9)
    # 64 full runs: the least that gives Hartmann-6 a grid (2 values per parameter)
    budget = (args.full_runs or 64) * max_epochs
    tasks = [(n, s, budget, max_epochs) for n in args.problems for s in range(seeds)]
    start = time.perf_counter()
    if args.processes > 1:
        with multiprocessing.get_context("fork").Pool(args.processes) as pool:
            results = pool.map(run_task, tasks, chunksize=1)
    else:
        results = [run_task(t) for t in tasks]
    text = markdown(summarize(results, budget), seeds, budget)
    print(text)
    print(
        f"{len(tasks)} problem-seed runs, max_epochs {max_epochs}, budget {budget} epochs, "
        f"{time.perf_counter() - start:.0f} s on {args.processes} process(es)"
    )
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
