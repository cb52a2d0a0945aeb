"""Which parameters mattered in a stage: Optuna's importance evaluators on its records.

The records are loaded into an in-memory study (the stage studies stay untouched: reports
read storage only), then handed to ``PedAnovaImportanceEvaluator`` (Optuna's default: which
parameters decide whether a trial lands in the top 10%, which is the question a coarse
stage answers) or ``FanovaImportanceEvaluator`` (variance of the whole response). Cases
where an evaluator has nothing to say, or raises, are answered with a reason instead.
fANOVA fits scikit-learn's random forest, which only the ``cnn`` extra installs: without
it ``auto`` means PED-ANOVA, and asking for fANOVA by name says what to install.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hpsearch.core.errors import UserError
from hpsearch.core.records import TrialRecord
from hpsearch.core.space import Param, SearchSpace

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

log = logging.getLogger(__name__)

EVALUATORS = ("auto", "fanova", "ped-anova")
#: ``auto`` uses fANOVA up to this many usable trials and PED-ANOVA past it. PED-ANOVA
#: compares the top 10% with the rest, which is one trial in a 10-trial fine stage (on the
#: quickstart it then ranked weight_decay first, 0.58, where fANOVA and the 40-trial coarse
#: stage rank lr first); fANOVA costs ~1 s per 100 trials and grows faster than that.
AUTO_FANOVA_MAX = 100
#: Fewer usable trials than this cannot rank parameters: PED-ANOVA compares the top 10%
#: with the rest, and fANOVA fits a forest; both need a handful of points at least.
MIN_TRIALS = 5
#: fANOVA's cost grows faster than its trials (measured: 0.5 s at 100, 1.2 s at 200, 3.7 s
#: at 400, 16 s at 800); past this many it is fitted on an even subset, which ranked the
#: parameters as the full set did in those runs.
FANOVA_MAX = 200


@dataclass(frozen=True)
class Importance:
    """Normalized importances, most important first, or an empty dict and the reason."""

    values: dict[str, float] = field(default_factory=dict)
    evaluator: str = "ped-anova"
    note: str | None = None

    def top(self, n: int) -> list[str]:
        return list(self.values)[:n]


def usable(records: list[TrialRecord]) -> list[TrialRecord]:
    """Complete trials with a finite value. Diverged runs are kept: their value is a
    chance-level stand-in, and where a parameter makes runs diverge is what it matters for."""
    return [
        r
        for r in records
        if r.finished and r.state == "COMPLETE" and r.value is not None and math.isfinite(r.value)
    ]


def varying(records: list[TrialRecord], space: SearchSpace) -> list[str]:
    """Parameters that took more than one value: an evaluator can say nothing of the rest."""
    return [p.name for p in space if len({repr(r.params.get(p.name)) for r in records}) > 1]


def param_importance(
    records: list[TrialRecord],
    space: SearchSpace | None,
    direction: str,
    evaluator: str = "auto",
) -> Importance:
    """Importance of each searched parameter in ``records`` (one stage)."""
    if evaluator not in EVALUATORS:
        raise ValueError(f"evaluator must be one of {EVALUATORS}, but got {evaluator!r}")
    if evaluator == "auto":
        n = len(usable(records))
        evaluator = "fanova" if n <= AUTO_FANOVA_MAX and fanova_available() else "ped-anova"
    elif evaluator == "fanova" and not fanova_available():
        raise UserError(
            "--importance fanova: fANOVA needs scikit-learn, which is not installed; "
            'pip install scikit-learn (or "hpsearch[cnn]"), or use --importance ped-anova'
        )
    if space is None:
        return Importance(evaluator=evaluator, note="the stage has not started")
    rows = [r for r in usable(records) if all(p.name in r.params for p in space)]
    if len(rows) < MIN_TRIALS:
        return Importance(
            evaluator=evaluator,
            note=f"too few usable trials ({len(rows)}; {MIN_TRIALS} needed) to rank parameters",
        )
    names = varying(rows, space)
    fixed = [n for n in space.names if n not in names]
    left_out = f"; {', '.join(fixed)} took one value only" if fixed else ""
    if not names:
        return Importance(evaluator=evaluator, note="every parameter took one value only")
    if len(names) == 1:
        return Importance({names[0]: 1.0}, evaluator, f"only {names[0]} varied{left_out}")
    if len({r.value for r in rows}) == 1:
        return Importance(evaluator=evaluator, note="every trial scored the same")
    try:
        raw = _evaluate(rows, space, names, direction, evaluator)
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:
        log.info("importance (%s) failed: %s", evaluator, exc)
        return Importance(evaluator=evaluator, note=f"{evaluator} could not rank them ({exc})")
    total = sum(raw.values())
    if not total > 0:
        return Importance(
            evaluator=evaluator, note=f"no parameter made a measurable difference{left_out}"
        )
    values = {k: v / total for k, v in sorted(raw.items(), key=lambda kv: -kv[1])}
    return Importance(values, evaluator, left_out.lstrip("; ") or None)


def fanova_available() -> bool:
    """Whether scikit-learn is installed; located, not imported (Optuna imports it when an
    fANOVA evaluator is fitted)."""
    return importlib.util.find_spec("sklearn") is not None


def _evaluate(
    rows: list[TrialRecord],
    space: SearchSpace,
    names: list[str],
    direction: str,
    evaluator: str,
) -> dict[str, float]:
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

    if evaluator == "fanova" and len(rows) > FANOVA_MAX:
        step = len(rows) / FANOVA_MAX
        rows = [rows[int(i * step)] for i in range(FANOVA_MAX)]
    dists = {p.name: _distribution(p, rows) for p in space if p.name in names}
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # as SearchStore.open does: no chatter
    study = optuna.create_study(direction="minimize" if direction == "minimize" else "maximize")
    study.add_trials(
        [
            optuna.trial.create_trial(
                params={n: r.params[n] for n in names},
                distributions=dists,
                value=float(r.value),
            )
            for r in rows
            if r.value is not None  # (usable rows: all have one)
        ]
    )
    # Unnormalized: Optuna's normalization turns "nothing mattered" (all zeros) into equal
    # shares, which would read as "everything mattered equally".
    ev: Any = (
        PedAnovaImportanceEvaluator()
        if evaluator == "ped-anova"
        else FanovaImportanceEvaluator(seed=0)
    )
    return {k: float(v) for k, v in ev.evaluate(study, params=names).items()}


def _distribution(p: Param, rows: list[TrialRecord]) -> BaseDistribution:
    """The distribution spanned by the values tried: stored spaces are per stage, and a value
    outside a distribution is refused by ``create_trial``."""
    return p.spanned([r.params[p.name] for r in rows]).to_distribution()
