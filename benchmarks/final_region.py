"""Rules for the final promising region, measured on the runs a benchmark already made.

``search_efficiency.py --raw FILE`` keeps, for every seed of the default plan, the last
stage's searched space and finished runs. This script narrows them again under other
``keep`` / ``margin`` rules (the rule ``hpsearch report`` uses for the last stage is
``hpsearch.core.stage_spec.DEFAULT_KEEP`` / ``DEFAULT_MARGIN``) and measures each rule's final
region against the problems' known optima, on the same runs: how often it contains one,
its median volume as a share of the space, and how often a region whose leave-one-out
sureness (``hpsearch.core.regions.sureness``) says 90% or more contains one. Region quality is
thus chosen without rerunning, and without buying it with search efficiency: the runs are
those of the efficiency table.

    python benchmarks/final_region.py RAW.json [--rules 0.25:0.25 0.25:1 0.5:1]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import regions as rg  # noqa: E402
from problems import PROBLEMS  # noqa: E402


def records(runs: list[list[Any]], epochs: int) -> list[Any]:
    from hpsearch.core.records import TrialRecord

    return [
        TrialRecord(n, "last", state, params, value, epochs=epochs)
        for n, state, params, value in runs
    ]


def measure_rule(results: list[dict[str, Any]], keep: float, margin: float) -> dict[str, Any]:
    """Per problem: containment rate and median volume of the rule's final region, and
    pooled over problems the regions stating >= 90% sureness and how many held an optimum."""
    from search_efficiency import make_spec

    from hpsearch.core.regions import narrow, sureness
    from hpsearch.core.space import SearchSpace

    per: dict[str, list[dict[str, float]]] = {}
    for r in results:
        name, contender, seed = r["task"][0], r["task"][1], r["task"][2]
        last = (r.get("regions") or {}).get("last")
        if contender != "hpsearch plan" or not last or last["space"] is None:
            continue
        problem = PROBLEMS[name]
        original = make_spec(problem, seed).space
        space = SearchSpace.from_dict(last["space"])
        recs = records(last["runs"], problem.max_epochs)
        region = narrow(space, recs, keep=keep, margin=margin, direction="minimize")
        sure = sureness(space, recs, keep=keep, margin=margin, direction="minimize")
        per.setdefault(name, []).append(
            {
                "contains": float(any(rg.inside(region.space, o) for o in problem.optima)),
                "volume": rg.volume_share(region.space, original),
                "sure": sure.share if sure is not None else -1.0,
            }
        )
    sure = [m for ms in per.values() for m in ms if m["sure"] >= 0.9]
    return {
        "problems": {
            name: (sum(m["contains"] for m in ms) / len(ms), rg.median([m["volume"] for m in ms]))
            for name, ms in per.items()
        },
        "sure90": (len(sure), sum(m["contains"] for m in sure) / len(sure) if sure else None),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("raw", type=Path, nargs="+", help="search_efficiency.py --raw files")
    ap.add_argument("--rules", nargs="+", default=["0.25:0.25", "0.25:1", "0.5:0.5", "0.5:1"])
    args = ap.parse_args(argv)
    results = [r for path in args.raw for r in json.loads(path.read_text())]
    names: list[str] = []
    rows = []
    for rule in args.rules:
        keep, margin = (float(x) for x in rule.split(":"))
        m = measure_rule(results, keep, margin)
        names = names or list(m["problems"])
        cells = [f"{c:.0%}, {v:.2%}" for c, v in (m["problems"][n] for n in names)]
        count, rate = m["sure90"]
        held = f"{rate:.0%} of {count}" if rate is not None else "none"
        rows.append(f"| keep {keep:g}, margin {margin:g} | {' | '.join(cells)} | {held} |")
    print("| final-region rule | " + " | ".join(f"{n}: contains, volume" for n in names)
          + " | sure >= 90%: contains |")  # fmt: skip
    print("| --- " * (len(names) + 2) + "|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
