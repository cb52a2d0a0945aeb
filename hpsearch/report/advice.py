"""The warnings a practitioner would give after looking at a stage, as pure functions.

Each rule reads records (and the region a stage hands on) and returns an :class:`Advice`
or nothing: best values at the edge of a range, a stage where nothing learned, a large
train/validation gap, flat-then-drop curves, activations that collapse at initialization,
divergence and failures. The built-in CNN records the flags these rules prefer
(``not_learning``, ``flat_then_drop``, ``overfit_gap``, ``dead_unit_fraction``,
``act_std_layer``); for a plain objective the rules fall back to its reported values or
stay silent, never guess. No Optuna, no plotting: unit-tested on hand-made records.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import TypeGuard

from hpsearch.core.evidence import EDGE_RUNS
from hpsearch.core.failures import failures_text
from hpsearch.core.records import TrialRecord
from hpsearch.core.regions import EDGE_TOL, ParamRegion, Region, select_top
from hpsearch.core.space import SearchSpace
from hpsearch.core.spec import StageSpec
from hpsearch.report.curves import loss_curve
from hpsearch.training import diagnostics

#: A stage "learned nothing" when at least this fraction of the trials whose learning is
#: known did not learn (a lucky run or two must not hide a stage that is broken).
NOTHING_LEARNED = 0.9
#: Median train-minus-validation accuracy of the best trials above which they overfit: at
#: 10 points a held-out score is visibly worse than the training one, beyond noise.
OVERFIT_GAP = 0.10
#: Flat-then-drop curves are a pattern, not an accident, from this fraction of trials on.
FLAT_FRACTION = 0.2
#: A per-epoch curve needs this many points before its shape can be judged: the flat part
#: (``diagnostics.FLAT_FRACTION`` of it) must hold at least 2 points.
MIN_SHAPE_POINTS = 7
#: Median fraction of dead ReLU units at init above which the init is blamed.
DEAD_UNITS = 0.25
#: Last-layer over first-layer activation std at init below which the signal collapsed.
ACT_COLLAPSE = 0.1
#: Diverged runs are worth acting on (not just the price of a wide coarse range) from here.
WASTED = 0.3
#: A divergence threshold on a parameter is named when at most this fraction of the runs
#: that did not diverge lie above it.
SEPARATES = 0.1


@dataclass(frozen=True)
class Advice:
    """One warning: the stage it is about, a kind (for tests and styling), the message."""

    stage: str
    kind: str
    message: str


def num(x: float | int) -> str:
    """A bound as a person writes it in a study file: ``1e-05``, ``0.3``, ``128``."""
    return str(x) if isinstance(x, int) else f"{x:.3g}"


def _finished(records: list[TrialRecord]) -> list[TrialRecord]:
    return [r for r in records if r.finished]


@dataclass(frozen=True)
class EdgeFix:
    """Where the study file lines that follow an edge warning go: ``stage``'s own ranges
    (``[stage.space.NAME]``), in a stage not prepared yet, or in a new one (``new``: its
    ``[[stage]]`` lines first, to add at the end of the file)."""

    stage: StageSpec
    new: bool


def at_edge(p: ParamRegion, region: Region, records: list[TrialRecord]) -> int:
    """How many of the runs that spanned ``region`` lie in the outer ``EDGE_TOL`` of
    ``p``'s range at its pressed edge."""
    before = p.before
    assert before.numeric
    lo, hi = before.to_scale(before.low), before.to_scale(before.high)
    tol = EDGE_TOL * (hi - lo)
    kept = set(region.kept)
    n = 0
    for r in records:
        if r.number not in kept or p.name not in r.params:
            continue
        x = before.to_scale(r.params[p.name])
        n += (x - lo <= tol) if p.edge == "low" else (hi - x <= tol)
    return n


def edge_advice(
    stage: str,
    region: Region,
    *,
    last: bool,
    fix: EdgeFix | None = None,
    records: list[TrialRecord] | None = None,
) -> list[Advice]:
    """ "widen lr below 1e-05": for each parameter whose best trials pressed a bound, and
    with ``fix`` the exact lines to add to the study file to search past them. With
    ``records``, only where at least ``evidence.EDGE_RUNS`` of the runs that spanned the
    region lie at that edge; a bound pressed by fewer gets a "thin" line instead."""
    out = []
    pressed = [p for p in region.params if p.edge_bounds() is not None]
    if records is not None:
        thin = [(p, at_edge(p, region, records)) for p in pressed]
        pressed = [p for p, n in thin if n >= EDGE_RUNS]
        for p, n in thin:
            if n < EDGE_RUNS:
                out.append(
                    Advice(
                        stage,
                        "thin",
                        f"best {p.name} sits at the {p.edge} edge of stage {stage}'s range, "
                        f"but only {n} of the {len(region.kept)} best runs lie there "
                        f"({EDGE_RUNS} needed): the evidence is thin, so no advice to widen it",
                    )
                )
    for p in pressed:
        bounds = p.edge_bounds()
        assert bounds is not None  # pressed holds only the params that pressed a bound
        bound, reached = bounds
        where = "below" if p.edge == "low" else "above"
        msg = (
            f"best {p.name} sits at the {p.edge} edge of stage {stage}'s range ({num(bound)}): "
            f"widen {p.name} {where} {num(bound)}"
        )
        if last:
            msg += " and search again; the optimum may lie outside the range"
        else:
            msg += f" in the study file (the next stage searches on to {num(reached)})"
        out.append(Advice(stage, "edge", msg))
    if pressed and fix is not None:
        out.append(Advice(stage, "edge-fix", _fix_message(pressed, fix)))
    return out


def _fix_message(pressed: list[ParamRegion], fix: EdgeFix) -> str:
    names = [p.name for p in pressed]
    names_s = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
    lines = [line for p in pressed for line in range_lines(p)]
    if fix.new:
        s = fix.stage
        lines = [
            "[[stage]]",
            f'name = "{s.name}"',
            f"trials = {s.trials}",
            f"epochs = {s.epochs}",
            f'sampler = "{s.sampler}"',
            *lines,
        ]
        where = "add this stage at the end of the study file"
    else:
        where = f"add these lines to stage {fix.stage.name}'s [[stage]] table, after its keys,"
    return f"to search past the edge of {names_s}, {where} and launch again:\n" + "\n".join(
        f"    {line}" for line in lines
    )


def range_lines(p: ParamRegion) -> list[str]:
    """``[stage.space.NAME]`` with a range past the pressed edge of ``p``: at least a decade
    past the bound for a log parameter, and never narrower than narrowing goes on its own
    (``p.after``); the other end is narrowing's. Rounded outwards to 2 significant digits
    (ints: onto the step grid) and kept within the parameter's hard limits."""
    before, after = p.before, p.after
    assert before.numeric and after.numeric
    low, high = after.low, after.high
    if p.edge == "low":
        low = min(low, before.low / 10) if before.log else low
    else:
        high = max(high, before.high * 10) if before.log else high
    low, high = before.within_limits(*before.outward(low, high))
    return [f"[stage.space.{p.name}]", f"low = {_toml(low)}", f"high = {_toml(high)}"]


def _toml(x: float | int) -> str:
    """A TOML number of the parameter's kind: ``3`` for an int, ``3.0`` or ``5.6e-07``
    for a float (an int would make a float parameter's range an int one)."""
    return str(x) if isinstance(x, int) else repr(float(x))


def _learned(r: TrialRecord, direction: str) -> bool | None:
    """Did this trial learn? From the recorded flag, else from its loss curve; None if it
    cannot be told (a one-epoch run of a plain objective has a one-point curve)."""
    if not r.ok:
        return False
    flag = r.attrs.get("not_learning")
    if isinstance(flag, bool):
        return not flag
    curve = loss_curve(r, direction)
    if curve is None or len(curve) < 2:
        return None
    return not diagnostics.not_learning(curve)


def nothing_learned(stage: str, records: list[TrialRecord], direction: str) -> Advice | None:
    """A stage where (almost) no trial learned: the range, the data or the model is off."""
    done = _finished(records)
    if not done:
        return None
    if not any(r.ok for r in done):
        return Advice(
            stage,
            "nothing-learned",
            f"nothing learned in stage {stage}: all {len(done)} finished trials failed or "
            "diverged; see the reasons below, and try lower learning rates",
        )
    known = [x for x in (_learned(r, direction) for r in done) if x is not None]
    if len(known) * 2 < len(done) or known.count(False) < NOTHING_LEARNED * len(known):
        return None
    return Advice(
        stage,
        "nothing-learned",
        f"nothing learned in stage {stage}: {known.count(False)} of {len(known)} trials ended "
        "with a loss barely below where it started, or failed; widen the learning rate range "
        "upwards, train more epochs per trial, or check the data and labels",
    )


def train_val_gap(r: TrialRecord) -> float | None:
    """Final training minus validation accuracy, as recorded (None for plain objectives)."""
    gap = r.attrs.get("overfit_gap")
    if _number(gap):
        return float(gap)
    train, val = r.attrs.get("train_accuracy"), r.attrs.get("val_accuracy")
    if _number(train) and _number(val):
        return float(train) - float(val)
    return None


def overfitting(stage: str, records: list[TrialRecord], direction: str) -> Advice | None:
    """The best trials fit the training split far better than the validation split."""
    top = select_top(records, 0.25, direction)
    gaps = [g for g in (train_val_gap(r) for r in top) if g is not None]
    if not gaps or statistics.median(gaps) <= OVERFIT_GAP:
        return None
    return Advice(
        stage,
        "overfit",
        f"the best trials of stage {stage} overfit: training accuracy beats validation "
        f"accuracy by {statistics.median(gaps):.2f} (median of the top {len(gaps)}); "
        "regularize more (weight decay, dropout, data augmentation) or use more data",
    )


def _flat_then_drop(r: TrialRecord, direction: str) -> bool | None:
    flag = r.attrs.get("flat_then_drop")
    if isinstance(flag, bool):
        return flag
    curve = loss_curve(r, direction)
    if curve is None or len(curve) < MIN_SHAPE_POINTS:
        return None
    return diagnostics.flat_then_drop(curve)


def flat_then_drop(stage: str, records: list[TrialRecord], direction: str) -> Advice | None:
    """Many loss curves sit on a plateau, then fall: the signature of a bad init."""
    flags = [
        x for x in (_flat_then_drop(r, direction) for r in _finished(records)) if x is not None
    ]
    hits = flags.count(True)
    if hits < 2 or hits < FLAT_FRACTION * len(flags):
        return None
    return Advice(
        stage,
        "flat-then-drop",
        f"{hits} of {len(flags)} trials in stage {stage} stayed flat at first, then dropped: "
        "the signature of a bad initialization (weights too small, the signal vanishing "
        "through the layers); use He (Kaiming) init for ReLU, or batch normalization",
    )


def init_collapse(stage: str, records: list[TrialRecord]) -> list[Advice]:
    """Dead ReLU units and activations shrinking layer by layer, measured at init."""
    done = _finished(records)
    out = []
    dead = [
        float(r.attrs["dead_unit_fraction"])
        for r in done
        if _number(r.attrs.get("dead_unit_fraction"))
    ]
    if dead and statistics.median(dead) > DEAD_UNITS:
        out.append(
            Advice(
                stage,
                "init",
                f"at initialization a median {statistics.median(dead):.0%} of ReLU units were "
                f"dead in stage {stage} (never active on a batch, so they get no gradient); "
                "use He init, or a leaky activation",
            )
        )
    ratios = []
    for r in done:
        stds = r.attrs.get("act_std_layer")
        if isinstance(stds, list) and len(stds) >= 2 and _number(stds[0]) and stds[0] > 0:
            ratios.append((float(stds[-1]) / float(stds[0]), stds))
    collapsed = [x for x in ratios if x[0] < ACT_COLLAPSE]
    if ratios and len(collapsed) * 2 > len(ratios):
        _, stds = sorted(collapsed, key=lambda x: x[0])[len(collapsed) // 2]
        out.append(
            Advice(
                stage,
                "init",
                f"activations shrink layer by layer at initialization in {len(collapsed)} of "
                f"{len(ratios)} trials of stage {stage} (std {stds[0]:.3g} -> {stds[-1]:.3g} "
                "in a typical one): the collapse a too-small init causes; use He or Xavier "
                "init, or batch normalization",
            )
        )
    return out


def divergence(stage: str, records: list[TrialRecord], space: SearchSpace | None) -> Advice | None:
    """How many trials diverged and, when one parameter separates them, above which value."""
    done = _finished(records)
    bad = [r for r in done if r.state == "COMPLETE" and r.diverged]
    if not bad:
        return None
    msg = f"{len(bad)} of {len(done)} trials in stage {stage} diverged"
    cut = _divergence_cut(bad, [r for r in done if r.ok], space)
    if cut is not None:
        msg += f", all with {cut[0]} >= {num(cut[1])}"
    if len(bad) >= WASTED * len(done):
        if cut is not None:
            msg += f"; lowering the top of {cut[0]}'s range would spend that budget on runs that learn"
        else:
            msg += "; lower the learning rate range, or check the init"
    return Advice(stage, "diverged", msg)


def _divergence_cut(
    bad: list[TrialRecord], ok: list[TrialRecord], space: SearchSpace | None
) -> tuple[str, float] | None:
    """The parameter and value above which all diverged runs lie and (almost) no other."""
    if space is None or len(bad) < 2:
        return None
    best: tuple[float, str, float] | None = None
    for p in space:
        if not p.numeric or any(p.name not in r.params for r in bad):
            continue
        t = min(r.params[p.name] for r in bad)
        above = sum(1 for r in ok if r.params.get(p.name, -math.inf) >= t)
        frac = above / len(ok) if ok else 0.0
        if frac <= SEPARATES and (best is None or frac < best[0]):
            best = (frac, p.name, t)
    return (best[1], best[2]) if best else None


def failures(stage: str, records: list[TrialRecord]) -> Advice | None:
    """Failed trials, grouped by exception type and the user's frame they were raised at
    (``core.failures.group_failures``), each group with its real count and an example."""
    done = _finished(records)
    failed = [r for r in done if r.state == "FAIL"]  # a stopped run did not fail
    if not failed:
        return None
    return Advice(
        stage,
        "failed",
        f"{len(failed)} of {len(done)} trials in stage {stage} failed:\n" + failures_text(failed),
    )


def stage_advice(
    stage: str,
    records: list[TrialRecord],
    space: SearchSpace | None,
    handed_on: Region | None,
    *,
    direction: str,
    last: bool,
    fix: EdgeFix | None = None,
) -> list[Advice]:
    """Every warning for one stage, most actionable first."""
    out: list[Advice] = []
    nothing = nothing_learned(stage, records, direction)
    if nothing is not None:
        out.append(nothing)
    if handed_on is not None and nothing is None:  # the edges of noise mean nothing
        out += edge_advice(stage, handed_on, last=last, fix=fix, records=records)
    for rule in (
        lambda: overfitting(stage, records, direction),
        lambda: flat_then_drop(stage, records, direction),
        lambda: divergence(stage, records, space),
        lambda: failures(stage, records),
    ):
        found = rule()
        if found is not None:
            out.append(found)
    out += init_collapse(stage, records)
    return out


def _number(x: object) -> TypeGuard[float]:
    """A finite int or float, not a bool."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
