"""The three methods of ``hpsearch compare`` side by side, from their records.

Best value reached, best value against epochs spent, and how many distinct values of each
parameter each method tried: a grid of n trials over d parameters tries about n^(1/d)
values of each, random search tries n, which is why random wins when one parameter
matters most. Pure: computed from :class:`SearchView` records, formatted as text.
"""

from __future__ import annotations

from dataclasses import dataclass

from hpsearch.core.points import distinct_values
from hpsearch.core.records import TrialRecord
from hpsearch.report.blocks import format_table
from hpsearch.report.plotdata import Progress, progress, trials
from hpsearch.report.search import SearchView

#: Fractions of the budget at which the best-so-far values are compared.
CHECKPOINTS = (0.1, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class MethodResult:
    label: str
    plan: str  # e.g. "18 trials x 5 epochs"
    records: list[TrialRecord]  # finished trials, in the order they ran
    progress: Progress
    distinct: dict[str, int]

    @property
    def best(self) -> float | None:
        return self.progress.best[-1] if self.progress.best else None


def method_result(label: str, view: SearchView) -> MethodResult:
    done = trials(view)
    plan = " + ".join(f"{s.trials} x {s.epochs}" for s in view.spec.stages)
    return MethodResult(
        label,
        f"{plan} epochs",
        done,
        progress(done, view.spec.direction, label),
        {p.name: distinct_values([r.params for r in done], p) for p in view.spec.space},
    )


def best_at(p: Progress, epochs: float) -> float | None:
    """The best value reached within ``epochs`` epochs (None: nothing usable by then)."""
    found = None
    for at, value in zip(p.epochs, p.best, strict=True):
        if at > epochs:
            break
        found = value
    return found


def format_comparison(search: SearchView, results: list[MethodResult]) -> str:
    """Plan, best value, best value at fractions of the budget, distinct values tried."""
    spec = search.spec
    budget = spec.total_epochs
    names = spec.space.names

    def show(x: float | None) -> str:
        return "-" if x is None else f"{x:.4g}"

    header = ["method", "plan (trials x epochs)", "epochs spent", f"best {spec.metric}"]
    header += [f"at {int(f * budget)}" for f in CHECKPOINTS[:-1]]
    rows = [
        [
            r.label,
            r.plan,
            f"{r.progress.total_epochs:g}",
            show(r.best),
            *(show(best_at(r.progress, f * budget)) for f in CHECKPOINTS[:-1]),
        ]
        for r in results
    ]
    distinct = format_table(
        ["method", *names], [[r.label, *(str(r.distinct[n]) for n in names)] for r in results]
    )
    finished = [(r.best, r) for r in results if r.best is not None]
    winner = ""
    if finished:
        better = min if spec.direction == "minimize" else max
        best, top = better(finished, key=lambda pair: pair[0])
        winner = f"\nbest: {top.label} ({spec.metric} {best:.4g})"
    return (
        f"compare {spec.name}: {spec.metric} ({spec.direction}), the same budget of "
        f"{budget} epochs for each method\n\n"
        + format_table(header, rows)
        + "\n(at N: the best value reached within the first N epochs)\n\n"
        + "distinct values tried per parameter:\n"
        + distinct
        + winner
    )
