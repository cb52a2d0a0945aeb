"""Is the reported promising region true, and is the confidence it states calibrated?

Two steps, so that a region rule is measured on the runs a search already made, without
rerunning it:

``collect`` runs the default plan through the real engine (``search_efficiency.make_spec``,
one SQLite file per run) and keeps, per problem and seed, every stage's searched space and
finished runs (state, params, value, epochs run) in one JSON file per run under ``--dir``.

``measure`` computes, for every recorded run, the final promising region ``hpsearch
report`` prints and the confidence it states (``hpsearch.core.regions.final_region``), and
checks both against the problem's known optima (``problem.optima``): per problem, how
often the region holds an optimum, its median volume as a share of the space, and the mean
stated confidence; then the calibration table (regions pooled by stated confidence, the
rate at which they held an optimum). Those are the tables of ``docs/regions.md``.

    python benchmarks/region_confidence.py collect --problems branin crossing --seeds 30
    python benchmarks/region_confidence.py measure [--problems ...] [--dir DIR]

The problems are those of ``problems.py`` beside this file; a copy of this file beside
another ``problems.py`` (a suite not merged yet) measures that suite's problems.
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
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import regions as rg  # noqa: E402
from problems import PROBLEMS  # noqa: E402

DEFAULT_DIR = Path(tempfile.gettempdir()) / "hpsearch-region-runs"
TMP = "/dev/shm" if os.path.isdir("/dev/shm") else None
#: Buckets of stated confidence for the calibration table.
BUCKETS = ((0.9, 1.01), (0.75, 0.9), (0.5, 0.75), (0.25, 0.5), (0.0, 0.25))


def _run_file(folder: Path, problem: str, seed: int) -> Path:
    return folder / f"{problem}-{seed}.json"


def collect_one(job: tuple[str, int, str]) -> str:
    """One default-plan search on one problem and seed; its stages' runs, as JSON."""
    name, seed, folder = job
    out = _run_file(Path(folder), name, seed)
    if out.exists():
        return f"{out.name} (kept)"
    logging.disable(logging.WARNING)
    import optuna
    from search_efficiency import make_spec

    import hpsearch.engine.worker
    from hpsearch import store as st
    from hpsearch.engine.worker import WorkerConfig, run_worker
    from hpsearch.report.search import load_search
    from hpsearch.tasks.compare import register_baselines

    hpsearch.engine.worker.write_stage_note = lambda *a, **k: None  # type: ignore[assignment]
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    problem = PROBLEMS[name]
    spec = make_spec(problem, seed)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=TMP) as tmp:
        url = f"sqlite:///{tmp}/search.db"
        key = register_baselines(st.SearchStore.open(url), spec)[0]
        run_worker(WorkerConfig(url, key))
        view = load_search(st.SearchStore.open(url), key)
    stages = [
        {
            "name": v.stage.name,
            "epochs": v.stage.epochs,
            "space": v.space.to_dict() if v.space is not None else None,
            "runs": [
                [r.number, r.state, r.params, r.value, int(r.attrs.get("epochs_run", r.epochs))]
                for r in v.records
                if r.finished
            ],
        }
        for v in view.stages
    ]
    data = {
        "problem": name,
        "seed": seed,
        "stages": stages,
        "seconds": time.perf_counter() - start,
    }
    out.write_text(json.dumps(data))
    return out.name


def load_runs(folder: Path, problems: list[str] | None) -> list[dict[str, Any]]:
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    return [r for r in runs if (problems is None or r["problem"] in problems)]


def stage_records(run: dict[str, Any]) -> list[tuple[Any, list[Any]]]:
    """Per stage: its searched space and its finished runs as TrialRecords."""
    from hpsearch.core.records import TrialRecord
    from hpsearch.core.space import SearchSpace

    out = []
    for s in run["stages"]:
        if s["space"] is None:
            continue
        recs = [
            TrialRecord(
                n,
                s["name"],
                state,
                params,
                value,
                attrs={"epochs_run": ran},
                epochs=s["epochs"],
            )
            for n, state, params, value, ran in s["runs"]
        ]
        out.append((SearchSpace.from_dict(s["space"]), recs))
    return out


def measure_run(run: dict[str, Any], **given: Any) -> dict[str, Any] | None:
    """The reported region of one recorded search against its problem's optima."""
    from search_efficiency import make_spec

    from hpsearch.core.regions import final_region

    options = dict(given)
    problem = PROBLEMS[run["problem"]]
    original = make_spec(problem, run["seed"]).space
    stages = stage_records(run)
    if options.pop("last_only", 0):  # what the report and the last stage's note use
        stages = stages[-1:]
    if not stages:
        return None
    reported = final_region(stages, direction="minimize", original=original, **options)
    if reported is None:
        return None
    return {
        "problem": run["problem"],
        "seed": run["seed"],
        "contains": float(any(rg.inside(reported.space, o) for o in problem.optima)),
        "volume": rg.volume_share(reported.space, original),
        "confidence": reported.confidence,
        "sure": reported.sure,
        "runs": reported.runs_inside,
    }


def summary(measures: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    per: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(m["problem"] for m in measures):
        ms = [m for m in measures if m["problem"] == name]
        per[name] = {
            "seeds": len(ms),
            "contains": sum(m["contains"] for m in ms) / len(ms),
            "volume": rg.median([m["volume"] for m in ms]),
            "stated": sum(m["confidence"] for m in ms) / len(ms),
            "sure": sum(m["sure"] for m in ms) / len(ms),
            "sure_contains": (
                sum(m["contains"] for m in ms if m["sure"]) / max(1, sum(m["sure"] for m in ms))
            ),
        }
    return per


def tables(measures: list[dict[str, Any]], title: str) -> str:
    per = summary(measures)
    lines = [
        f"#### {title}",
        "",
        "| problem | seeds | holds an optimum | median volume | stated confidence (mean) "
        "| gap | says sure | holds one when sure |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, p in per.items():
        gap = p["stated"] - p["contains"]
        sure_c = f"{p['sure_contains']:.0%}" if p["sure"] else "—"
        lines.append(
            f"| {name} | {p['seeds']:.0f} | {p['contains']:.0%} | {p['volume']:.3%} | "
            f"{p['stated']:.0%} | {gap:+.0%} | {p['sure']:.0%} | {sure_c} |"
        )
    if measures:
        stated = sum(m["confidence"] for m in measures) / len(measures)
        held = sum(m["contains"] for m in measures) / len(measures)
        lines.append(
            f"| all | {len(measures)} | {held:.0%} | "
            f"{rg.median([m['volume'] for m in measures]):.3%} | {stated:.0%} | "
            f"{stated - held:+.0%} | | |"
        )
    lines += [
        "",
        "| stated confidence | regions | mean stated | held an optimum |",
        "| --- | --- | --- | --- |",
    ]
    for lo, hi in BUCKETS:
        ms = [m for m in measures if lo <= m["confidence"] < hi]
        if ms:
            stated = sum(m["confidence"] for m in ms) / len(ms)
            held = sum(m["contains"] for m in ms) / len(ms)
            lines.append(
                f"| {lo:.0%}-{min(hi, 1.0):.0%} | {len(ms)} | {stated:.0%} | {held:.0%} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("step", choices=("collect", "measure"))
    ap.add_argument("--problems", nargs="+", choices=[p for p, x in PROBLEMS.items() if x.optima])
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--title", default="final promising region")
    ap.add_argument("--options", default="", help="final_region keyword options, k=v,k=v")
    args = ap.parse_args(argv)
    if args.step == "collect":
        args.dir.mkdir(parents=True, exist_ok=True)
        names = args.problems or [p for p, x in PROBLEMS.items() if x.optima]
        jobs = [
            (n, s, str(args.dir))
            for s in range(args.first_seed, args.first_seed + args.seeds)
            for n in names
        ]
        if args.processes > 1:
            with multiprocessing.get_context("fork").Pool(args.processes) as pool:
                for done in pool.imap_unordered(collect_one, jobs):
                    print(done, flush=True)
        else:
            for job in jobs:
                print(collect_one(job), flush=True)
        return 0
    options: dict[str, Any] = {}
    for kv in filter(None, args.options.split(",")):
        k, v = kv.split("=")
        options[k] = float(v) if "." in v or "e" in v else int(v)
    start = time.process_time()
    measures = [
        m
        for run in load_runs(args.dir, args.problems)
        if (m := measure_run(run, **options)) is not None
    ]
    cpu = time.process_time() - start
    print(tables(measures, args.title))
    print(f"\n{len(measures)} regions, {cpu / max(1, len(measures)):.2f} s of CPU each")
    return 0 if measures and not math.isnan(measures[0]["volume"]) else 1


if __name__ == "__main__":
    sys.exit(main())
