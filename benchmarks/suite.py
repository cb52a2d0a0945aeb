"""Issue 19's benchmark suite: the default plan against five anchors, tuning and held-out.

The problems and their split are fixed in ``benchmarks/suite.toml`` (13 problems: the four
synthetic ones of ``search_efficiency.py``, eight more in ``problems.py`` and the recorded
``digits-mlp``). Every contender gets the same budget in epochs (``full_runs x max_epochs``
of the suite file; exactly what the default plan spends) and the same epoch accounting:
an epoch counts when a run reports it, so a run stopped or pruned at epoch 3 costs 3, a
run that fails costs the epochs it reported, and a run the budget cuts short stops there.

Contenders (``--contenders``):

- ``hpsearch plan``: the study file a user would write (``budget`` + ``max_epochs``: the
  default plan) through the real engine on SQLite in /dev/shm (``search_efficiency.py``).
- ``random``: Optuna's RandomSampler, full-length runs.
- ``tpe``: Optuna's TPESampler, full-length runs.
- ``tpe+hyperband``: TPESampler + HyperbandPruner (min 1, max ``max_epochs``, factor 3)
  until the epochs it ran reach the budget, under 3 study names per seed (its brackets are
  hashed from the name); the figures pool them.
- ``gp``: Optuna's GPSampler, full-length runs (as many as the budget buys).
- ``dehb``: DEHB (Awad et al. 2021, ``pip install dehb``), fidelities 1 .. max_epochs,
  eta 3, each job a fresh run of that many epochs, until the budget is spent.

Quality after each run is that of the configuration a user would pick then (the best value
among the longest runs so far) scored by its true full-length value minus the optimum
(``search_efficiency.quality_trace``). Each run's trace is cached in
``benchmarks/results/suite/<contender>.json`` (only the points where the quality changes),
so the tables regenerate without rerunning and one contender can be rerun alone.

    python benchmarks/suite.py --all               # run what is not cached, write the tables
    python benchmarks/suite.py --tables            # tables from the cache into docs/benchmarks.md
    python benchmarks/suite.py --contenders "hpsearch plan" --rerun   # after an engine change
    python benchmarks/suite.py --plan previous --contenders "hpsearch plan"  # a plan variant
    python benchmarks/suite.py --quick             # smoke run: 2 problems, 2 seeds, 1/4 budget
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import multiprocessing
import os
import re
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import problems as pb  # noqa: E402
import search_efficiency as se  # noqa: E402

SUITE = HERE / "suite.toml"
RESULTS = HERE / "results" / "suite"
DOCS = HERE.parent / "docs" / "benchmarks.md"
BEGIN, END = "<!-- suite tables: begin (benchmarks/suite.py) -->", "<!-- suite tables: end -->"
PLAN = "hpsearch plan"
HYPERBAND = "tpe+hyperband"
ANCHORS = ("random", "tpe", HYPERBAND, "gp", "dehb")
CONTENDERS = (PLAN, *ANCHORS)
NAMES = 3  # study names per seed for tpe+hyperband
FRACTIONS = (0.25, 0.5, 1.0)
SEEDS = 30
QUICK = ("branin", "two-basin")


def load_suite(path: Path = SUITE) -> dict[str, Any]:
    return tomllib.loads(path.read_text())


def split() -> dict[str, list[str]]:
    """``{"tuning": [...], "held-out": [...]}``, as fixed in suite.toml."""
    s = load_suite()
    return {"tuning": list(s["tuning"]["problems"]), "held-out": list(s["held_out"]["problems"])}


def problem(name: str) -> pb.Problem:
    """The problem at the suite's budget."""
    base = {**pb.PROBLEMS, **pb.SUITE_PROBLEMS}
    p = pb.digits_mlp_problem() if name == "digits-mlp" else base[name]
    b = load_suite()["budget"][name]
    return dataclasses.replace(p, max_epochs=b["max_epochs"], full_runs=b["full_runs"])


# --------------------------------------------------------------------------- the anchors
def run_optuna(contender: str, prob: pb.Problem, spec: Any, budget: int, seed: int, name: int):
    """One of Optuna's samplers at full length, or TPE + Hyperband on per-epoch values, on
    an in-memory study named after problem, contender, seed and ``name``; a diverged run
    is a failure."""
    import optuna

    max_epochs = prob.max_epochs
    n_trials: int | None = budget // max_epochs
    pruner: optuna.pruners.BasePruner = optuna.pruners.NopPruner()
    if contender == "random":
        sampler: optuna.samplers.BaseSampler = optuna.samplers.RandomSampler(seed=seed)
    elif contender == "gp":
        sampler = optuna.samplers.GPSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed)
        if contender == HYPERBAND:
            pruner = se.hyperband(max_epochs)
            n_trials = None  # until the epochs it ran reach the budget
    study_name = f"{prob.name}-{contender}-{seed}" + (f"-{name}" if name else "")
    return se.optuna_events(
        spec, max_epochs, budget, seed, sampler=sampler, pruner=pruner, n_trials=n_trials,
        study_name=study_name, failures=(pb.Diverged,),
    )  # fmt: skip


def configspace(space: Any, seed: int) -> Any:
    """The search space as a ConfigSpace for DEHB (same scales)."""
    from ConfigSpace import Categorical, ConfigurationSpace, Float, Integer

    from hpsearch.core.space import CategoricalParam, IntParam

    cs = ConfigurationSpace(seed=seed)
    for p in space:
        if isinstance(p, CategoricalParam):
            cs.add(Categorical(p.name, list(p.choices)))
        elif isinstance(p, IntParam):
            cs.add(Integer(p.name, (p.low, p.high), log=p.log))
        else:
            cs.add(Float(p.name, (p.low, p.high), log=p.log))
    return cs


def run_dehb(prob: pb.Problem, spec: Any, budget: int, seed: int) -> list[se.Event]:
    """DEHB by ask/tell: each job a fresh run of ``round(fidelity)`` epochs."""
    import loguru
    from dehb import DEHB

    from hpsearch.core.points import derive_seed
    from hpsearch.engine.loader import load_objective, prepare_params

    loguru.logger.remove()
    fn = load_objective(spec.objective, spec.base_dir)
    max_epochs = prob.max_epochs
    events: list[se.Event] = []
    spent = 0
    with tempfile.TemporaryDirectory(dir=se.TMP) as folder:
        cs = configspace(spec.space, seed)
        opt = DEHB(
            cs=cs,
            dimensions=len(cs),
            min_fidelity=1,
            max_fidelity=max_epochs,
            eta=3,
            n_workers=1,
            seed=seed,
            output_path=folder,
            save_freq="end",
            log_level="ERROR",
        )
        loguru.logger.remove()
        number = 0
        while spent < budget:
            job = opt.ask()
            epochs = max(1, min(round(job["fidelity"]), max_epochs))
            params = {p.name: _native(job["config"][p.name]) for p in spec.space}
            last = [0, math.nan]
            left = budget - spent

            class _Cut(Exception):
                pass

            def on_value(
                epoch: int, value: float, left: int = left, last: list = last, full: int = epochs
            ) -> None:
                last[:] = [epoch, value]
                if epoch >= left and epoch < full:
                    raise _Cut  # the budget ran out mid-run

            merged = prepare_params(spec, {**spec.fixed, **params})
            failed = False
            try:
                value = fn(merged, epochs, se._Report(derive_seed(seed, number), on_value))
                failed = not math.isfinite(value)
            except (pb.Diverged, _Cut) as e:
                failed = isinstance(e, pb.Diverged)
            ran = int(last[0])
            spent += ran
            events.append((ran, math.nan if failed else last[1], params, epochs - ran))
            fitness = last[1] if not failed and math.isfinite(last[1]) else 1e9
            opt.tell(job, {"fitness": float(fitness), "cost": float(ran)})
            number += 1
    return events


def _native(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


# --------------------------------------------------------------------------- runs and cache
#: (problem, contender, seed, study name index, budget scale, plan variant or "")
Task = tuple[str, str, int, int, float, str]


#: Wall-clock time (time.time()) after which a pool process starts no new run (--deadline).
_DEADLINE: list[float] = []


def run_task(task: Task) -> dict[str, Any] | None:
    """One run (a job of the pool); None when past the deadline or when it broke (the
    traceback goes to stderr and the other runs go on)."""
    if _DEADLINE and time.time() > _DEADLINE[0]:
        return None
    try:
        return _run_task(task)
    except Exception:
        import traceback

        print(f"{task} failed:\n{traceback.format_exc()}", file=sys.stderr)
        return None


def _run_task(task: Task) -> dict[str, Any]:
    name, contender, seed, k, scale, plan = task
    logging.disable(logging.WARNING)
    import warnings

    import optuna
    import torch

    torch.set_num_threads(1)

    import hpsearch.engine.worker

    warnings.filterwarnings("ignore")
    hpsearch.engine.worker.write_stage_note = lambda *a, **kw: None  # type: ignore[assignment]
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    prob = problem(name)
    start = time.process_time()
    spec = se.make_spec(prob, seed, scale, plan or None)
    budget = spec.total_epochs
    facts: dict[str, Any] = {}
    if contender == PLAN:
        events, facts = se.run_hpsearch(PLAN, spec, prob)
        facts.pop("last", None)  # the last stage's runs: too large to cache
    elif contender == "dehb":
        events = run_dehb(prob, spec, budget, seed)
    else:
        events = run_optuna(contender, prob, spec, budget, seed, k)
    trace = se.quality_trace(events, prob)
    return {
        "task": list(task),
        "budget": budget,
        "trace": compact(trace),
        "runs": len(events),
        "failed": sum(1 for e in events if not math.isfinite(e[1])),
        "spent": trace[-1][0] if trace else 0,
        "regions": facts,
        "cpu_s": round(time.process_time() - start, 2),
    }


def compact(trace: list[tuple[int, float]]) -> list[list[float]]:
    """The points where the quality changes, and the last: ``quality_at`` reads the same."""
    out: list[list[float]] = []
    for spent, q in trace:
        q = float(f"{q:.6g}") if math.isfinite(q) else q
        if out and out[-1][1] == q:
            continue
        out.append([spent, q])
    if trace and out[-1][0] != trace[-1][0]:
        out.append([trace[-1][0], out[-1][1]])
    return out


def label(contender: str, plan: str) -> str:
    return f"{contender} [{plan}]" if plan and contender == PLAN else contender


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def cache_path(results: Path, contender: str, plan: str) -> Path:
    return results / f"{_slug(label(contender, plan))}.json"


def load_cache(results: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(results.glob("*.json")):
        out += json.loads(path.read_text())
    return out


def save(results: Path, new: list[dict[str, Any]]) -> None:
    """Merge runs into their contender's file (a rerun replaces the same task)."""
    results.mkdir(parents=True, exist_ok=True)
    by_file: dict[Path, list[dict[str, Any]]] = {}
    for r in new:
        _, contender, _, _, _, plan = r["task"]
        by_file.setdefault(cache_path(results, contender, plan), []).append(r)
    for path, rs in by_file.items():
        old = json.loads(path.read_text()) if path.exists() else []
        keys = {tuple(r["task"]) for r in rs}
        merged = [r for r in old if tuple(r["task"]) not in keys] + rs
        merged.sort(key=lambda r: (r["task"][0], r["task"][2], r["task"][3]))
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(merged, separators=(",", ":")) + "\n")
        tmp.replace(path)  # atomic: a run killed mid-write keeps the previous file


# --------------------------------------------------------------------------- tables
def _q(values: list[float]) -> tuple[float, float, float]:
    return se._quartiles(values)


def summarize(results: list[dict[str, Any]], scale: float = 1.0) -> dict[str, Any]:
    """Per problem and contender label: quartiles of regret at each budget fraction."""
    table: dict[str, Any] = {}
    for r in results:
        name, contender, seed, _, sc, plan = r["task"]
        if sc != scale:
            continue
        t = table.setdefault(name, {"budget": r["budget"], "rows": {}})
        row = t["rows"].setdefault(label(contender, plan), {"traces": [], "seeds": set()})
        row["traces"].append(r["trace"])
        row["seeds"].add(seed)
        row.setdefault("cpu", []).append(r.get("cpu_s", 0.0))
        row.setdefault("failed", []).append(r.get("failed", 0))
    for t in table.values():
        for row in t["rows"].values():
            row["quality"] = [
                _q([se.quality_at(tr, f * t["budget"]) for tr in row["traces"]]) for f in FRACTIONS
            ]
    return table


#: An anchor run on fewer seeds than this is shown but never the "best anchor": one lucky
#: search is not a median.
MIN_SEEDS = 10


def best_anchor(rows: dict[str, Any], i: int) -> tuple[str, float]:
    meds = [
        (rows[a]["quality"][i][1], a)
        for a in ANCHORS
        if a in rows and len(rows[a]["seeds"]) >= MIN_SEEDS
    ]
    if not meds:
        return "", math.nan
    med, a = min(meds)
    return a, med


def _f(x: float) -> str:
    if not math.isfinite(x):
        return "—"
    return "0" if x == 0 else f"{x:.3g}"


def _ratio(x: float, best: float) -> str:
    if not (math.isfinite(x) and math.isfinite(best)):
        return "—"
    if best == 0:
        return "1" if x == 0 else "∞"
    return f"{x / best:.2f}"


def markdown(table: dict[str, Any]) -> str:
    sets = split()
    lines: list[str] = []
    order = list(CONTENDERS) + sorted(
        {c for t in table.values() for c in t["rows"]} - set(CONTENDERS)
    )
    present = [c for c in order if any(c in t["rows"] for t in table.values())]
    lines += [
        "#### What ran: seeds per problem and contender (— not run)",
        "",
        "| problem | set | " + " | ".join(present) + " |",
        "| --- | --- | " + "--- | " * len(present),
    ]
    for set_name, names in sets.items():
        for n in names:
            rows = table.get(n, {}).get("rows", {})
            cells = [str(len(rows[c]["seeds"])) if c in rows else "—" for c in present]
            lines.append(f"| {n} | {set_name} | " + " | ".join(cells) + " |")
    lines.append("")
    for set_name, names in sets.items():
        shown = [n for n in names if n in table]
        lines += [
            f"#### {set_name} set: default plan against the anchors (median regret)",
            "",
            "| problem | plan @50% | best anchor @50% | TPE+HB @50% | plan @100% "
            "| best anchor @100% | TPE+HB @100% | plan / best anchor @50%, @100% "
            "| seeds: plan, TPE+HB |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for n in shown:
            rows = table[n]["rows"]
            cells = []
            ratios = []
            for i in (1, 2):
                plan = rows[PLAN]["quality"][i][1] if PLAN in rows else math.nan
                a, best = best_anchor(rows, i)
                hb = rows[HYPERBAND]["quality"][i][1] if HYPERBAND in rows else math.nan
                cells += [_f(plan), f"{_f(best)} ({a})" if a else "—", _f(hb)]
                ratios.append(_ratio(plan, best))
            seeds = ", ".join(
                str(len(rows[c]["seeds"])) if c in rows else "0" for c in (PLAN, HYPERBAND)
            )
            lines.append(f"| {n} | " + " | ".join(cells) + f" | {', '.join(ratios)} | {seeds} |")
        lines.append("")
        for n in shown:
            t = table[n]
            p = problem(n)
            seeds = max(len(r["seeds"]) for r in t["rows"].values())
            lines += [
                f"##### {n} ({set_name}): budget {t['budget']} epochs ({p.full_runs} runs of "
                f"{p.max_epochs}), {seeds} seeds, regret median [q1, q3]",
                "",
                "| contender | seeds | @25% | @50% | @100% | / best anchor @25/50/100% "
                "| failed runs | CPU s/search |",
                "| --- | --- | --- | --- | --- | --- | --- | --- |",
            ]
            rows = t["rows"]
            for c in [c for c in order if c in rows]:
                row = rows[c]
                q = row["quality"]
                cells = [f"{_f(m)} [{_f(a)}, {_f(b)}]" for a, m, b in q]
                rat = ", ".join(_ratio(q[i][1], best_anchor(rows, i)[1]) for i in range(3))
                lines.append(
                    f"| {c} | {len(row['seeds'])} | {' | '.join(cells)} | {rat} | "
                    f"{_q(row['failed'])[1]:g} | {_q(row['cpu'])[1]:.2g} |"
                )
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_docs(text: str, path: Path = DOCS) -> None:
    doc = path.read_text()
    if BEGIN not in doc:
        raise SystemExit(f"{path} has no {BEGIN!r} marker")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{text}{END}{tail}")


# --------------------------------------------------------------------------- main
def tasks_for(
    names: list[str],
    contenders: list[str],
    seeds: range,
    scale: float,
    plan: str,
    by_seed: bool = False,
) -> list[Task]:
    out = [
        (n, c, s, k, scale, plan if c == PLAN else "")
        for n in names
        for s in seeds
        for c in contenders
        for k in range(NAMES if c == HYPERBAND else 1)
    ]
    # the plan first (the figures others rerun against), then the cheap anchors, GP last
    # (the costliest); seed by seed, so that a run cut short has whole seeds of each
    order = {PLAN: 0, "random": 1, "tpe": 2, HYPERBAND: 3, "dehb": 4, "gp": 5}
    if by_seed:  # every contender on seed 0, then seed 1...: a cut run has equal seeds
        out.sort(key=lambda t: (t[2], order[t[1]]))
    else:
        out.sort(key=lambda t: (order[t[1]], t[2]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--all", action="store_true", help="run every uncached run, write tables")
    ap.add_argument("--tables", action="store_true", help="only tabulate the cache")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 problems, 2 seeds")
    ap.add_argument("--problems", nargs="+", help="default: the whole suite")
    ap.add_argument("--set", choices=["tuning", "held-out"], help="only this set's problems")
    ap.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    ap.add_argument("--seeds", type=int, help=f"seeds per problem (default {SEEDS})")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--plan", default="", help="a variant of the plan (plan_variants.py)")
    ap.add_argument("--rerun", action="store_true", help="rerun cached runs too")
    ap.add_argument("--processes", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--results", type=Path, help=f"cache folder (default {RESULTS})")
    ap.add_argument("--docs", type=Path, default=DOCS, help="markdown file with the markers")
    ap.add_argument("--out", type=Path, help="also write the tables here")
    ap.add_argument("--by-seed", action="store_true", help="run seed by seed (see tasks_for)")
    ap.add_argument("--deadline", type=float, help="start no run after this many seconds")
    args = ap.parse_args(argv)
    if args.deadline:
        _DEADLINE.append(time.time() + args.deadline)

    sets = split()
    names = args.problems or (
        sets[args.set] if args.set else [n for s in sets.values() for n in s]
    )
    scale = 1.0
    seeds = args.seeds or SEEDS
    results_dir = args.results or RESULTS
    if args.quick:
        names, seeds, scale = args.problems or list(QUICK), args.seeds or 2, 0.25
        results_dir = args.results or Path(tempfile.mkdtemp(prefix="suite-quick-"))
    start = time.perf_counter()
    todo: list[Task] = []
    if not args.tables:
        seed_range = range(args.first_seed, args.first_seed + seeds)
        todo = tasks_for(names, args.contenders, seed_range, scale, args.plan, args.by_seed)
        if not args.rerun:
            have = {tuple(r["task"]) for r in load_cache(results_dir)}
            todo = [t for t in todo if t not in have]
        print(f"{len(todo)} runs to do", file=sys.stderr)
        done: list[dict[str, Any]] = []
        if args.processes > 1 and len(todo) > 1:
            pool = multiprocessing.get_context("fork").Pool(args.processes)
            runs = pool.imap_unordered(run_task, todo, chunksize=1)
        else:
            pool, runs = None, map(run_task, todo)
        # saved as they come: a session that ends keeps what finished
        for i, r in enumerate(runs):
            if r is not None:
                done.append(r)
            if len(done) >= 3 or i + 1 == len(todo):
                save(results_dir, done)
                done = []
                print(f"  {i + 1}/{len(todo)}", file=sys.stderr)
        if pool is not None:
            pool.close()
            pool.join()
    results = [r for r in load_cache(results_dir) if r["task"][0] in names]
    text = markdown(summarize(results, scale))
    print(text)
    print(f"{len(todo)} runs in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    if args.out:
        args.out.write_text(text)
    if (args.all or args.tables) and not args.quick:
        write_docs(markdown(summarize(load_cache(results_dir), scale)), args.docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
