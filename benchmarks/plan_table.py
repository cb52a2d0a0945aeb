"""The default plan at every budget: the table in docs/plans.md, generated from the plan.

For budgets from 50 to 20,000 epochs and runs of 8, 27 and 100 epochs, the stages
``hpsearch.core.plan.default_plan`` makes, ASHA's rungs, the runs it expects each stage to
start and carry the full length (``plan.asha_survivors``), and the ``why:`` line that
``hpsearch launch --dry-run`` prints under it. Pure and instant: no search runs.

    python benchmarks/plan_table.py            # print the table
    python benchmarks/plan_table.py --write    # replace it in docs/plans.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hpsearch.core import plan

BUDGETS = (50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000)
MAX_EPOCHS = (8, 27, 100)
DOC = Path(__file__).resolve().parent.parent / "docs" / "plans.md"
BEGIN, END = "<!-- plan table: benchmarks/plan_table.py --write -->", "<!-- end of plan table -->"


def _stage(s: plan.StageSpec) -> str:
    marks = plan.rungs(s)
    stop = f", ASHA at {'/'.join(map(str, marks))}" if marks else ""
    return f"{s.name} {s.trials} x {s.epochs} ep, {s.sampler}{stop}"


def table() -> str:
    lines = [
        "| max_epochs | budget | stages (runs' worth x epochs) | runs started (about) "
        "| coarse runs to full length (about) |",
        "| --- | --- | --- | --- | --- |",
    ]
    whys = []
    for max_epochs in MAX_EPOCHS:
        for budget in BUDGETS:
            if budget < max_epochs:
                lines.append(
                    f"| {max_epochs} | {budget} | refused: budget >= max_epochs must hold "
                    "(not one full run) | — | — |"
                )
                continue
            stages = plan.default_plan(budget, max_epochs)
            started = " + ".join(f"{plan.asha_survivors(s)[0]:.0f}" for s in stages)
            full = (
                f"{plan.asha_survivors(stages[0])[1]:.1f}"
                if len(stages) > 1
                else f"one stage ({plan.asha_survivors(plan.coarse_stage(budget // max_epochs, max_epochs))[1]:.1f} "
                f"< {plan.MIN_SURVIVORS})"
            )
            lines.append(
                f"| {max_epochs} | {budget} | {'; '.join(_stage(s) for s in stages)} "
                f"| {started} | {full} |"
            )
            whys.append(
                f"- max_epochs {max_epochs}, budget {budget}: {plan.why(stages, budget, max_epochs)}"
            )
    splits = ", ".join(f"{plan.least_budget(e)} epochs at max_epochs {e}" for e in MAX_EPOCHS)
    return "\n".join(
        [
            *lines,
            "",
            f"Coarse-to-fine from: {splits}; below, one stage over the whole space.",
            "",
            "What `hpsearch launch --dry-run` prints under each plan:",
            "",
            *whys,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help=f"replace the table in {DOC.name}")
    args = ap.parse_args(argv)
    text = table()
    if not args.write:
        print(text)
        return 0
    doc = DOC.read_text()
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
