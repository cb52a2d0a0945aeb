"""Search efficiency: hpsearch's default plan against flat baselines and Optuna's samplers.

Every contender gets the same total budget in epochs, on problems with a known optimum
where short runs are biased and noisy (``benchmarks/problems.py``), and on the built-in
CNN on digits. The hpsearch contenders run through the real engine: the study file a user
would write (``budget`` + ``max_epochs``, so the default plan), registered with
``hpsearch compare``'s baselines (grid and random at the plan's budget, full-length runs)
and run by ``run_worker`` in-process on a temporary SQLite file. Optuna's samplers run on
an in-memory study at full length; TPE + Hyperband runs until the epochs it actually used,
pruned trials included, reach the budget.

Quality after each trial is that of the configuration a user would pick then: the best
value among the longest runs so far (a 1-epoch winner only until a longer run exists),
scored by its true full-length value minus the optimum (simple regret); for the CNN, the
validation loss that run reported. Reported per problem: median [quartiles] over seeds at
25%, 50% and 100% of the budget, the budget each contender needs (median over seeds) to
reach flat random's final median, and the runs early stopping stopped with the epochs it
saved (median per search). TPE + Hyperband runs under several study names per seed (its
brackets are hashed from the name), and its figures pool them.

For the default plan, the regions it hands on are checked against the problems' known
optima (``benchmarks/regions.py``): whether each stage's region and the final promising
region contain one, the lowest true regret inside, and their volume as a share of the
space; and how often the region's stated confidence comes true.

    python benchmarks/search_efficiency.py                # full run (docs/benchmarks.md)
    python benchmarks/search_efficiency.py --quick        # smoke run, well under a minute
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import os
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # `problems:...` objectives, here and in pool processes

import regions as rg  # noqa: E402
from problems import CNN_PROBLEM, PROBLEMS, Problem, study_text  # noqa: E402

#: One trial as the benchmark sees it: (epochs it ran, last value it reported, params,
#: epochs early stopping saved: 0 for a run that went to its end).
Event = tuple[int, float, dict[str, Any], int]
HPSEARCH = ("hpsearch plan", "hpsearch grid", "hpsearch random")
OPTUNA = ("optuna random", "optuna grid", "optuna tpe", "optuna tpe+hyperband")
CONTENDERS = HPSEARCH + OPTUNA
REFERENCE = "hpsearch random"
HYPERBAND = "optuna tpe+hyperband"
#: Study names TPE + Hyperband runs under per seed (``--names``): its brackets come from a
#: hash of the name, which moved its medians by 0.07-0.25 on the same seeds.
NAMES = 3
FRACTIONS = (0.25, 0.5, 1.0)
ALL_PROBLEMS = {**PROBLEMS, CNN_PROBLEM.name: CNN_PROBLEM}
QUICK_PROBLEMS = ["branin", "lr-dominant"]
#: SQLite on tmpfs where there is one: the benchmark measures search quality, not fsync.
TMP = "/dev/shm" if os.path.isdir("/dev/shm") else None


def make_spec(problem: Problem, seed: int, scale: float = 1.0, plan: str | None = None) -> Any:
    """The study file a user would write: the default plan from ``budget``; ``plan``
    names a variant of it (``plan_variants.py``) to measure against it."""
    from hpsearch.objectives.catalog import parse_spec

    budget = max(1, round(problem.full_runs * scale)) * problem.max_epochs
    text = study_text(problem, budget=budget, max_epochs=problem.max_epochs, seed=seed)
    spec = parse_spec(tomllib.loads(text), source=problem.name, base_dir=str(HERE))
    if plan:
        import dataclasses

        from plan_variants import VARIANTS

        spec = dataclasses.replace(spec, stages=VARIANTS[plan](budget, problem.max_epochs))
    return spec


def run_hpsearch(contender: str, spec: Any, problem: Problem) -> tuple[list[Event], dict]:
    """One hpsearch contender through the real engine, on its own SQLite file; for the
    plan, also its regions measured against the problem's optima (``region_facts``)."""
    import optuna

    from hpsearch import store as st
    from hpsearch.engine.worker import WorkerConfig, run_worker
    from hpsearch.report.search import load_search
    from hpsearch.tasks.compare import register_baselines

    with tempfile.TemporaryDirectory(dir=TMP) as folder:
        url = f"sqlite:///{folder}/search.db"
        store = st.SearchStore.open(url)
        if contender == "hpsearch plan":
            from hpsearch.engine.stages import register_search

            # the plan alone: the baselines' grid does not exist on every budget
            register_search(store, spec)
            key = spec.name
        else:
            key = register_baselines(store, spec)[HPSEARCH.index(contender)]
        run_worker(WorkerConfig(url, key))
        # A baseline is one study named by its key; the plan has one study per stage.
        names = (
            [st.stage_study_name(key, s.name) for s in spec.stages]
            if contender == "hpsearch plan"
            else [key]
        )
        events: list[Event] = []
        for name in names:
            study = optuna.load_study(study_name=name, storage=url)
            epochs = int(study.user_attrs[st.ATTR_EPOCHS])
            done = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
            for t in sorted(done, key=lambda t: t.datetime_complete):
                value = t.value if t.value is not None else math.inf
                ran = int(t.user_attrs.get("epochs_run", epochs))
                if t.state == optuna.trial.TrialState.FAIL:
                    # a run that failed trained the epochs it reported (as the anchors count)
                    ran = max(t.intermediate_values, default=0)
                events.append((ran, value, dict(t.params), epochs - ran))
        facts: dict = {}
        if contender == "hpsearch plan" and problem.optima:
            facts = region_facts(load_search(st.SearchStore.open(url), key), problem)
        return events, facts


def region_facts(view: Any, problem: Problem) -> dict[str, Any]:
    """The plan's regions against the optima: per stage the region it hands on (the last
    stage's is the promising region the report prints), and whether the recommended run
    lands near an optimum."""
    from hpsearch.core.records import recommended
    from hpsearch.core.regions import sureness
    from hpsearch.report.search import region_rule

    original = view.spec.space
    stages = []
    for v in view.stages:
        if v.handed_on is None or v.space is None:
            stages.append(None)
            continue
        keep, margin = region_rule(view.spec, v.index)
        sure = sureness(v.space, v.records, keep=keep, margin=margin, direction="minimize")
        facts = rg.measure(v.handed_on.space, original, problem)
        stages.append({**facts, "sure": sure.share if sure is not None else None})
    best = recommended([r for v in view.stages for r in v.records], view.spec.direction)
    near = best is not None and rg.near_optimum(best.params, original, problem)
    last = view.stages[-1]
    return {
        "stages": stages,
        "near": float(near),
        # the last stage's runs, to measure other final-region rules on the same runs
        "last": {
            "space": last.space.to_dict() if last.space is not None else None,
            "runs": [[r.number, r.state, r.params, r.value] for r in last.records if r.finished],
        },
    }


class _Report:
    """The ``report`` handle an objective gets, wired to an Optuna trial instead of a worker."""

    def __init__(self, seed: int, on_value: Any) -> None:
        self.seed = seed
        self.threads = 1
        self.device = "cpu"
        self.attrs: dict[str, Any] = {}
        self._on_value = on_value

    def __call__(self, epoch: int, value: float) -> None:
        self._on_value(int(epoch), float(value))

    def log(self, **attrs: Any) -> None:
        self.attrs.update(attrs)


def optuna_grid(space: Any, trials: int) -> dict[str, list[Any]]:
    """The grid hpsearch's baseline uses (same shape, same values), for GridSampler."""
    from hpsearch.core.points import grid_shape
    from hpsearch.tasks.compare import largest_grid

    shape = grid_shape(space, largest_grid(space, trials))
    return {p.name: p.grid_levels(k) for p, k in zip(space, shape, strict=True)}


def run_optuna(
    contender: str, problem: Problem, spec: Any, budget: int, seed: int, name: int = 0
) -> list[Event]:
    """One of Optuna's samplers at full length; Hyperband prunes on per-epoch values. The
    study is named after problem, contender, seed and ``name`` (Hyperband's brackets)."""
    import optuna

    max_epochs = problem.max_epochs
    n_trials: int | None = budget // max_epochs
    pruner: optuna.pruners.BasePruner = optuna.pruners.NopPruner()
    if contender == "optuna random":
        sampler: optuna.samplers.BaseSampler = optuna.samplers.RandomSampler(seed=seed)
    elif contender == "optuna grid":
        grid = optuna_grid(spec.space, budget // max_epochs)
        sampler = optuna.samplers.GridSampler(grid, seed=seed)
        n_trials = math.prod(len(v) for v in grid.values())
    else:
        sampler = optuna.samplers.TPESampler(seed=seed)
        if contender == "optuna tpe+hyperband":
            pruner = hyperband(max_epochs)
            n_trials = None  # until the epochs it ran reach the budget
    study_name = f"{problem.name}-{contender}-{seed}" + (f"-{name}" if name else "")
    return optuna_events(
        spec, max_epochs, budget, seed, sampler=sampler, pruner=pruner, n_trials=n_trials,
        study_name=study_name,
    )  # fmt: skip


def hyperband(max_epochs: int) -> Any:
    """Optuna's HyperbandPruner as every anchor here runs it (epochs 1 .. max, eta 3)."""
    import optuna

    return optuna.pruners.HyperbandPruner(
        min_resource=1, max_resource=max_epochs, reduction_factor=3
    )


def optuna_events(
    spec: Any,
    max_epochs: int,
    budget: int,
    seed: int,
    *,
    sampler: Any,
    pruner: Any,
    n_trials: int | None,
    study_name: str,
    failures: tuple[type[BaseException], ...] = (),
) -> list[Event]:
    """Run ``spec``'s objective under one Optuna sampler and pruner until ``budget``
    epochs are spent, cutting the run that crosses it mid-way, as every contender is cut.

    Each trial becomes an event ``(epochs run, value, params, epochs left)``; a trial that
    raised one of ``failures`` or returned a non-finite value is recorded with value nan
    (a failure, as hpsearch records it). The study has a fixed name: Hyperband hashes the
    study name with the trial number to pick each trial's bracket, and an unnamed study
    gets a random one, so reruns differed.
    """
    import optuna

    from hpsearch.core.points import derive_seed
    from hpsearch.engine.loader import load_objective, prepare_params

    fn = load_objective(spec.objective, spec.base_dir)
    study = optuna.create_study(sampler=sampler, pruner=pruner, study_name=study_name)
    events: list[Event] = []
    spent = 0

    def objective(trial: optuna.Trial) -> float:
        nonlocal spent
        params = {p.name: p.suggest(trial) for p in spec.space}
        last = [0, math.nan]

        def on_value(epoch: int, value: float) -> None:
            nonlocal spent
            spent += 1
            last[:] = [epoch, value]
            trial.report(value, epoch)
            if spent >= budget and epoch < max_epochs:
                raise optuna.TrialPruned  # the budget ran out mid-run: cut it there
            if trial.should_prune():
                raise optuna.TrialPruned

        merged = prepare_params(spec, {**spec.fixed, **params})
        failed = False
        try:
            value = fn(merged, max_epochs, _Report(derive_seed(seed, trial.number), on_value))
            failed = not math.isfinite(value)
            return value
        except failures:
            failed = True
            return math.nan  # Optuna records a failed trial
        finally:
            ran = int(last[0])
            events.append((ran, math.nan if failed else last[1], params, max_epochs - ran))
            if spent >= budget:
                trial.study.stop()

    # optimize, not ask/tell: GridSampler stops the study itself once its grid is done.
    study.optimize(objective, n_trials=n_trials)
    return events


def quality_trace(events: list[Event], problem: Problem) -> list[tuple[int, float]]:
    """``(epochs spent, quality of the incumbent)`` after each trial: simple regret, or
    the CNN's validation loss. The incumbent is the best among the longest runs so far."""
    spent, trace = 0, []
    best: tuple[int, float, dict[str, Any]] | None = None
    for epochs, value, params, _ in events:
        spent += epochs
        if math.isfinite(value) and (
            best is None or epochs > best[0] or (epochs == best[0] and value < best[1])
        ):
            best = (epochs, value, params)
        if best is None:
            quality = math.inf
        elif problem.true_value is None:
            quality = best[1]
        else:
            quality = max(problem.true_value(best[2]) - problem.optimum, 0.0)
        trace.append((spent, quality))
    return trace


def quality_at(trace: list[tuple[int, float]], epochs: float) -> float:
    done = [q for spent, q in trace if spent <= epochs + 1e-9]
    return done[-1] if done else math.inf


def epochs_to_reach(trace: list[tuple[int, float]], target: float) -> float:
    return next((spent for spent, q in trace if q <= target), math.inf)


#: (problem, contender, seed, budget scale, study name index, plan variant or "").
Task = tuple[str, str, int, float, int, str]


def run_task(task: Task) -> dict[str, Any]:
    """One contender on one problem and seed (one job of the pool): its quality trace,
    the runs early stopping stopped and the epochs it saved, and the plan's regions."""
    problem_name, contender, seed, scale, name, plan = task
    logging.disable(logging.WARNING)
    import optuna

    import hpsearch.engine.worker

    # The dashboard notes (fANOVA per stage, over a second each) change nothing measured.
    hpsearch.engine.worker.write_stage_note = lambda *args, **kwargs: None  # type: ignore[assignment]
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    problem = ALL_PROBLEMS[problem_name]
    spec = make_spec(problem, seed, scale, plan if contender == "hpsearch plan" else None)
    budget = spec.total_epochs  # what the plan spends; every contender gets exactly this
    facts: dict[str, Any] = {}
    if contender in HPSEARCH:
        events, facts = run_hpsearch(contender, spec, problem)
    else:
        events = run_optuna(contender, problem, spec, budget, seed, name)
    return {
        "task": list(task),
        "budget": budget,
        "trace": quality_trace(events, problem),
        "stopped": sum(1 for e in events if e[3] > 0),
        "saved": sum(e[3] for e in events),
        "regions": facts,
    }


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    """25th, 50th and 75th percentiles, interpolated as numpy's default does, except that
    a quantile next to ``inf`` (never reached) is ``inf`` rather than ``nan``."""
    xs = sorted(values)

    def q(f: float) -> float:
        pos = f * (len(xs) - 1)
        lo, hi = xs[math.floor(pos)], xs[math.ceil(pos)]
        frac = pos - math.floor(pos)
        if not math.isfinite(hi):
            return hi if frac > 0 else lo
        return lo + (hi - lo) * frac

    return q(0.25), q(0.5), q(0.75)


def summarize(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per problem: its budget, the reference target, and per contender the quality
    quartiles at each budget fraction, the median budget fraction to reach the target and
    the median stopped runs and saved epochs; Hyperband's medians per study name; the
    plan's regions."""
    table: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r["task"][0] for r in results):
        mine = [r for r in results if r["task"][0] == name]
        budget = mine[0]["budget"]
        runs = {c: [r for r in mine if r["task"][1] == c] for c in CONTENDERS}
        runs = {c: rs for c, rs in runs.items() if rs}
        ref = [r["trace"] for r in runs.get(REFERENCE, [])]
        target = _quartiles([quality_at(t, budget) for t in ref])[1] if ref else math.nan
        rows = {}
        for c, rs in runs.items():
            ts = [r["trace"] for r in rs]
            rows[c] = {
                "quality": [
                    _quartiles([quality_at(t, f * budget) for t in ts]) for f in FRACTIONS
                ],
                "to_reach": _quartiles([epochs_to_reach(t, target) / budget for t in ts])[1],
                "stopped": _quartiles([r["stopped"] for r in rs])[1],
                "saved": _quartiles([r["saved"] for r in rs])[1],
            }
        per_name = {}
        for k in sorted({r["task"][4] for r in runs.get(HYPERBAND, [])}):
            ts = [r["trace"] for r in runs[HYPERBAND] if r["task"][4] == k]
            per_name[k] = [
                _quartiles([quality_at(t, f * budget) for t in ts])[1] for f in FRACTIONS
            ]
        seeds = len({r["task"][2] for r in mine})
        table[name] = {
            "budget": budget,
            "target": target,
            "seeds": seeds,
            "rows": rows,
            "hyperband_names": per_name,
            "regions": [r["regions"] for r in runs.get("hpsearch plan", []) if r["regions"]],
        }
    return table


def _fmt(x: float) -> str:
    return "—" if not math.isfinite(x) else f"{x:.3g}"


def markdown(table: dict[str, dict[str, Any]]) -> str:
    lines = []
    for name, t in table.items():
        what = "best val loss" if ALL_PROBLEMS[name].true_value is None else "regret"
        p = ALL_PROBLEMS[name]
        lines += [
            f"### {name}: {t['seeds']} seeds, budget {t['budget']} epochs "
            f"(max_epochs {p.max_epochs}), {what} median [q1, q3]",
            "",
            f"| contender | @25% | @50% | @100% | budget to reach {_fmt(t['target'])} "
            "| stopped runs | epochs saved |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for c, row in t["rows"].items():
            cells = [f"{_fmt(med)} [{_fmt(q1)}, {_fmt(q3)}]" for q1, med, q3 in row["quality"]]
            reach = row["to_reach"]
            lines.append(
                f"| {c} | {' | '.join(cells)} | "
                f"{f'{reach:.0%}' if math.isfinite(reach) else 'not reached'} | "
                f"{row['stopped']:g} | {row['saved']:g} |"
            )
        if len(t["hyperband_names"]) > 1:
            shown = "; ".join(
                f"name {k}: " + ", ".join(_fmt(x) for x in meds)
                for k, meds in t["hyperband_names"].items()
            )
            lines += ["", f"TPE + Hyperband's median per study name at 25/50/100%: {shown}"]
        lines += ["", *region_lines(name, t), ""]
    return "\n".join(lines)


def region_lines(name: str, t: dict[str, Any]) -> list[str]:
    """The plan's regions table: per stage's handed-on region and the final one."""
    facts = t["regions"]
    if not facts:
        return []
    n_stages = len(facts[0]["stages"])
    lines = [
        f"Regions of the default plan ({len(facts)} seeds): contains a true optimum, lowest "
        "true regret inside (median), volume as a share of the space (median [q1, q3])",
        "",
        "| region | contains an optimum | lowest regret inside | volume |",
        "| --- | --- | --- | --- |",
    ]
    for i in range(n_stages):
        ms = [f["stages"][i] for f in facts if f["stages"][i] is not None]
        if not ms:
            continue
        what = "final promising region" if i == n_stages - 1 else f"handed on by stage {i + 1}"
        q1, med, q3 = _quartiles([m["volume"] for m in ms])
        lines.append(
            f"| {what} | {sum(m['contains'] for m in ms) / len(ms):.0%} | "
            f"{_fmt(_quartiles([m['regret'] for m in ms])[1])} | "
            f"{med:.2%} [{q1:.2%}, {q3:.2%}] |"
        )
    near = sum(f["near"] for f in facts) / len(facts)
    lines += ["", f"The recommended run lands near an optimum (within {rg.NEAR:.0%} of every "
              f"range) in {near:.0%} of seeds."]  # fmt: skip
    return lines + ["", *calibration_lines([m for f in facts for m in f["stages"] if m])]


#: Buckets of the count a region's report line states (the share of its 10 best runs that
#: fall inside the region narrowed without them).
SURE_BUCKETS = ((0.9, 1.01), (0.7, 0.9), (0.5, 0.7), (0.0, 0.5))


def calibration_lines(measures: list[dict[str, Any]]) -> list[str]:
    """How often a region whose report line counts a share of its best runs inside (left
    out in turn) contains an optimum, every stage's region pooled: were the count a
    probability, a region at 90% would contain one 80-100% of the time."""
    lines = [
        "| best runs inside, left out | regions | mean share | contains an optimum |",
        "| --- | --- | --- | --- |",
    ]
    for lo, hi in SURE_BUCKETS:
        ms = [m for m in measures if m.get("sure") is not None and lo <= m["sure"] < hi]
        if ms:
            stated = sum(m["sure"] for m in ms) / len(ms)
            true = sum(m["contains"] for m in ms) / len(ms)
            lines.append(f"| {lo:.0%}-{min(hi, 1):.0%} | {len(ms)} | {stated:.0%} | {true:.0%} |")
    return lines


def verdicts(table: dict[str, dict[str, Any]]) -> list[str]:
    """The default plan's targets, checked on the medians (printed, never asserted)."""
    out = []
    for name, t in table.items():
        rows = t["rows"]
        if "hpsearch plan" not in rows:
            continue
        plan = rows["hpsearch plan"]["quality"][-1][1]
        checks = [
            f"< {c} {_fmt(rows[c]['quality'][-1][1])}: {'yes' if plan < rows[c]['quality'][-1][1] else 'NO'}"
            for c in ("hpsearch random", "hpsearch grid")
            if c in rows
        ]
        reach = rows["hpsearch plan"]["to_reach"]
        checks.append(f"reach <= 1/3: {'yes' if reach <= 1 / 3 else 'NO'} ({_fmt(reach)})")
        if HYPERBAND in rows:
            for i, f in ((1, "50%"), (2, "100%")):
                mine, hb = rows["hpsearch plan"]["quality"][i][1], rows[HYPERBAND]["quality"][i][1]
                checks.append(
                    f"<= tpe+hyperband @{f} {_fmt(hb)}: {'yes' if mine <= hb else 'NO'} ({_fmt(mine)})"
                )
        if "optuna tpe" in rows:
            tpe = rows["optuna tpe"]["quality"][-1][1]
            checks.append(f"<= tpe {_fmt(tpe)}: {'yes' if plan <= tpe else 'NO'}")
        out.append(f"{name}: plan {_fmt(plan)}; " + "; ".join(checks))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 seeds, small budgets")
    ap.add_argument("--seeds", type=int, help="seeds per problem (default 30; --quick 2)")
    ap.add_argument(
        "--problems",
        nargs="+",
        choices=list(ALL_PROBLEMS),
        help="default: all (--quick: branin, lr-dominant)",
    )
    ap.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    ap.add_argument("--names", type=int, default=NAMES, help="study names for tpe+hyperband")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--plan", help="run a variant of the default plan (plan_variants.py)")
    ap.add_argument("--processes", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--out", type=Path, help="also write the tables (markdown) here")
    ap.add_argument("--raw", type=Path, help="also write every run's trace (JSON) here")
    ap.add_argument(
        "--load", type=Path, nargs="+", help="tabulate --raw files (one run's or several's)"
    )
    args = ap.parse_args(argv)
    seeds = args.seeds or (2 if args.quick else 30)
    # Quick: a quarter of the budget; Hartmann-6 needs 64 full runs for a grid, so it and
    # the CNN are left out.
    problems = args.problems or (QUICK_PROBLEMS if args.quick else list(ALL_PROBLEMS))
    scale = 0.25 if args.quick else 1.0
    tasks = [
        (p, c, s, scale, k, args.plan or "")
        for p in problems
        for s in range(args.first_seed, args.first_seed + seeds)
        for c in args.contenders
        for k in range(args.names if c == HYPERBAND else 1)
    ]
    # Longest first (the CNN, then the plan's many short runs), so the pool ends together.
    tasks.sort(key=lambda t: (t[0] != CNN_PROBLEM.name, t[1] != "hpsearch plan"))
    start = time.perf_counter()
    if args.load:
        loaded = [r for path in args.load for r in json.loads(path.read_text())]
        results = [r for r in loaded if r["task"][0] in problems]
    elif args.processes > 1:
        with multiprocessing.get_context("fork").Pool(args.processes) as pool:
            results = pool.map(run_task, tasks, chunksize=1)
    else:
        results = [run_task(t) for t in tasks]
    if args.raw:
        args.raw.write_text(json.dumps(results))
    table = summarize(results)
    text = markdown(table) + "\n" + "\n".join(verdicts(table))
    print(text)
    print(
        f"\n{len(tasks)} runs ({len(problems)} problems x {seeds} seeds x "
        f"{len(args.contenders)} contenders) in {time.perf_counter() - start:.0f} s "
        f"on {args.processes} process(es)"
    )
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
