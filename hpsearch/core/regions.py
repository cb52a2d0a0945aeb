"""Narrowing: a finished stage's best trials -> the region the next stage searches.

This is what a practitioner does between a coarse and a fine search, written down: look at
the top fraction of runs, take the span of each parameter among them in its own scale
(decades for a learning rate), widen it a little, and if the best runs sit at the edge of
the range, search past that edge next time, because the optimum may lie outside the range
first guessed. Categorical parameters keep the choices seen among the top runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hpsearch.core.records import TrialRecord, rank
from hpsearch.core.space import CategoricalParam, NumericParam, Param, SearchSpace, param_from_dict

#: A best trial within this fraction of the range from a bound "presses" against it.
EDGE_TOL = 0.1
#: How far past a pressed bound the next range reaches, as a fraction of the old range.
EXTEND = 0.25
#: The narrowest a range may become, as a fraction of the old range: one kept trial or a tie
#: must not collapse a parameter to a point.
MIN_WIDTH = 0.2


@dataclass(frozen=True)
class ParamRegion:
    """How one parameter's range changed: ``before`` -> ``after`` (both Param)."""

    before: Param
    after: Param
    edge: str | None = None  # "low" or "high": the best trial pressed that bound
    best: Any = None  # the best trial's value of this parameter

    @property
    def name(self) -> str:
        return self.after.name

    def describe(self) -> str:
        """``lr 10^-3.40 .. 10^-2.10 (was 10^-5.00 .. 10^0.00)`` and friends."""
        return f"{self.name} {self.after.describe_range()} (was {self.before.describe_range()})"

    def edge_bounds(self) -> tuple[float, float] | None:
        """The bound the best trials pressed (``before``'s) and where the next range
        reaches past it (``after``'s); None when no bound was pressed (categoricals never
        press one)."""
        before, after = self.before, self.after
        if not self.edge or not (before.numeric and after.numeric):
            return None
        return before.bound(self.edge), after.bound(self.edge)


@dataclass(frozen=True)
class Region:
    """The box a finished stage hands to the next, and how it was found."""

    space: SearchSpace
    params: tuple[ParamRegion, ...]
    kept: tuple[int, ...]  # trial numbers that defined it
    considered: int
    best_value: float | None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def edges(self) -> dict[str, str]:
        return {p.name: p.edge for p in self.params if p.edge}

    def lines(self) -> list[str]:
        """The region as the report words it: one line per parameter, its range, what it
        was, the best trial's value and a bound the best trials pressed; then warnings."""
        out = [f"top {len(self.kept)} of {self.considered} trials"]
        if self.best_value is not None:
            out[0] += f", best value {self.best_value:.6g}"
        for p in self.params:
            line = p.describe()
            if p.best is not None:
                line += f", best {p.best:.4g}" if isinstance(p.best, float) else f", best {p.best}"
            if p.edge:
                line += f", the best trials pressed its {p.edge} bound"
            out.append(line)
        return out + [f"warning: {w}" for w in self.warnings]

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def to_dict(self) -> dict[str, Any]:
        return {
            "space": self.space.to_dict(),
            "params": {
                p.name: {"before": p.before.to_dict(), "edge": p.edge, "best": p.best}
                for p in self.params
            },
            "kept": list(self.kept),
            "considered": self.considered,
            "best_value": self.best_value,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Region:
        space = SearchSpace.from_dict(d["space"])
        params = tuple(
            ParamRegion(
                before=param_from_dict(name, info["before"]),
                after=space[name],
                edge=info["edge"],
                best=info["best"],
            )
            for name, info in d["params"].items()
        )
        return cls(
            space,
            params,
            tuple(d["kept"]),
            d["considered"],
            d["best_value"],
            tuple(d.get("warnings", ())),
        )


def select_top(records: list[TrialRecord], keep: float, direction: str) -> list[TrialRecord]:
    """The usable trials among the top ``keep`` fraction of finished trials.

    Failed and diverged trials rank last, so they count in the fraction's denominator (a
    stage where most runs diverged keeps few) but are never kept. Runs stopped early are
    left out altogether: their values are from fewer epochs, and the rule that stopped them
    found them behind the others; the fraction is of the runs that went the distance.
    Trials tied with the last kept value are kept too: which of two equal runs survives
    must not depend on numbering.
    """
    ranked = [r for r in rank(records, direction) if r.state != "PRUNED"]
    if not ranked:
        return []
    k = max(1, math.ceil(keep * len(ranked)))
    top = [r for r in ranked[:k] if r.ok]
    if top:
        cutoff = top[-1].value
        top += [r for r in ranked[k:] if r.ok and r.value == cutoff]
    return top


def narrow(
    space: SearchSpace,
    records: list[TrialRecord],
    *,
    keep: float,
    margin: float,
    direction: str,
) -> Region:
    """The region of ``space`` where the top ``keep`` fraction of ``records`` lie."""
    top = select_top(records, keep, direction)
    considered = sum(1 for r in records if r.finished)
    if not top:
        warning = (
            f"none of the {considered} finished trials gave a usable value (all failed or "
            "diverged); the next stage searches the same ranges"
        )
        same = tuple(ParamRegion(p, p) for p in space)
        return Region(space, same, (), considered, None, (warning,))
    best = top[0]
    regions = tuple(
        _narrow_numeric(p, top, best, margin) if p.numeric else _narrow_categorical(p, top, best)
        for p in space
    )
    warnings = tuple(
        f"best trials press the {r.edge} bound of {r.name} ({r.before.format(bounds[0])}); "
        f"the next stage searches {'below' if r.edge == 'low' else 'above'} it"
        for r in regions
        if (bounds := r.edge_bounds()) is not None
    )
    return Region(
        SearchSpace(tuple(r.after for r in regions)),
        regions,
        tuple(r.number for r in top),
        considered,
        best.value,
        warnings,
    )


def _narrow_categorical(
    p: CategoricalParam, top: list[TrialRecord], best: TrialRecord
) -> ParamRegion:
    kept = p.keeping(r.params[p.name] for r in top if p.name in r.params)
    return ParamRegion(p, kept if kept.choices else p, None, best.params.get(p.name))


def _narrow_numeric(
    p: NumericParam, top: list[TrialRecord], best: TrialRecord, margin: float
) -> ParamRegion:
    lo_b, hi_b = p.scale_range()
    width = hi_b - lo_b
    vals = [p.to_scale(r.params[p.name]) for r in top if p.name in r.params]
    b = p.to_scale(best.params[p.name])
    lo, hi = min(vals), max(vals)
    pad = margin * (hi - lo)
    lo, hi = lo - pad, hi + pad
    if hi - lo < MIN_WIDTH * width:  # one trial, or a tie: keep a usable width around them
        mid = (lo + hi) / 2
        lo, hi = mid - MIN_WIDTH * width / 2, mid + MIN_WIDTH * width / 2

    # Pressing a bound: the best trial in the outer EDGE_TOL of the range *and* the top
    # trials leaning that way (their median in the outer quarter). The second condition keeps a
    # parameter that does not matter, whose best value falls anywhere, from being "pressed".
    med = sorted(vals)[len(vals) // 2]
    edge = None
    if b - lo_b <= EDGE_TOL * width and med - lo_b <= width / 4:
        edge, lo = "low", min(lo, lo_b - EXTEND * width)
    else:
        lo = max(lo, lo_b)
    if hi_b - b <= EDGE_TOL * width and hi_b - med <= width / 4:
        edge, hi = "high", max(hi, hi_b + EXTEND * width)
    else:
        hi = min(hi, hi_b)
    low, high = p.within_limits(p.from_scale(lo), p.from_scale(hi))
    if low <= p.low and edge == "low" and (p.min is not None and p.low <= p.min):
        edge = None  # pressed against a hard limit: nothing to search past
    if high >= p.high and edge == "high" and (p.max is not None and p.high >= p.max):
        edge = None
    return ParamRegion(p, p.with_range(low, high), edge, best.params[p.name])


#: How many of a stage's best runs the region's sureness is measured on, and the fewest.
SURE_TOP = 10
SURE_LEAST = 5


@dataclass(frozen=True)
class Sureness:
    """How sure a region is: of the stage's ``of`` best usable runs, ``inside`` fall inside
    the region narrowed the same way from the other runs (each left out in turn)."""

    inside: int
    of: int

    @property
    def share(self) -> float:
        return self.inside / self.of if self.of else 0.0

    def describe(self) -> str:
        """A count, not a probability: the benchmark found regions at 9-10 of 10 holding
        the true optimum in well under 90% of seeds (docs/benchmarks.md, "Regions"), so
        the line says what was counted and no more."""
        return (
            f"{self.inside} of the {self.of} best runs fall inside the region narrowed without "
            "them (how stable it is, not how near the optimum)"
        )


def sureness(
    space: SearchSpace,
    records: list[TrialRecord],
    *,
    keep: float,
    margin: float,
    direction: str,
    top: int = SURE_TOP,
) -> Sureness | None:
    """Leave-one-out: would the region have found each of the best runs had that run not
    been there? A best run is a stand-in for the optimum the region claims to hold: when
    the best runs cluster, the region narrowed without any one of them still holds it;
    when they are scattered (two basins, noise larger than the differences), it does not.
    (``benchmarks/search_efficiency.py`` checks how often the claim comes true.) None when
    fewer than ``SURE_LEAST`` runs are usable: two of two inside would claim 100%."""
    best = [r for r in rank(records, direction) if r.ok][:top]
    if len(best) < SURE_LEAST:
        return None
    inside = 0
    for r in best:
        others = [o for o in records if o.number != r.number]
        region = narrow(space, others, keep=keep, margin=margin, direction=direction)
        inside += contains(region.space, r.params)
    return Sureness(inside, len(best))


def contains(space: SearchSpace, point: dict[str, Any]) -> bool:
    """The point lies inside the box (categoricals among its choices, by repr)."""
    for p in space:
        if p.name not in point:
            continue
        if not p.contains(point[p.name]):
            return False
    return True


#: The share of the optimum's posterior draws the reported region is peeled down to.
TARGET = 0.9
#: The region says it is sure when its confidence is at least this...
SURE = 0.9
#: ...and it spans at most this share of the space first searched: a region over most of
#: the space is true for lack of saying much.
SURE_VOLUME = 0.01
#: The fewest full-length runs a confidence is computed from: below this the evidence is
#: thin, and the report says so instead of stating a region.
MIN_RUNS = 8


@dataclass(frozen=True)
class FinalRegion:
    """The promising region a report ends with, and how sure the runs make it.

    ``space`` is the region in the parameters' own terms (int bounds on their grid, a set of
    choices); ``confidence`` the share of the optimum's posterior draws inside it
    (``hpsearch.core.confidence``); ``volume`` its share of the space first searched, each
    axis in its scale; ``runs``: the full-length runs it was computed from, ``inside``: how
    many of them lie in it. ``thin`` names what was missing where no region is claimed
    (then ``space`` is the whole space searched and ``confidence`` is None)."""

    space: SearchSpace
    searched: SearchSpace
    confidence: float | None
    volume: float
    runs: int
    inside: int
    thin: str | None = None

    @property
    def sure(self) -> bool:
        return (
            self.confidence is not None and self.confidence >= SURE and self.volume <= SURE_VOLUME
        )

    @property
    def runs_inside(self) -> int:
        return self.inside

    def region(self, best: dict[str, Any] | None = None) -> Region:
        """As a :class:`Region` (``before``: the space searched), for the region tables."""
        params = tuple(
            ParamRegion(p, self.space[p.name], None, (best or {}).get(p.name))
            for p in self.searched
        )
        return Region(self.space, params, (), self.runs, None)

    def describe(self) -> str:
        """The line under the region's table: what the confidence is, and whether to trust it."""
        if self.thin is not None:
            return f"no promising region stated: the evidence is thin ({self.thin})"
        assert self.confidence is not None
        share = f"{self.volume:.2%}" if self.volume < 0.01 else f"{self.volume:.0%}"
        line = (
            f"confidence {self.confidence:.0%} that the best settings lie in this region "
            f"(a model of the {self.runs} full-length runs; {self.inside} of them inside), "
            f"which spans {share} of the space searched"
        )
        if self.sure:
            return line + ": sure"
        why = (
            "the runs do not pin the optimum down"
            if self.confidence is not None and self.confidence < SURE
            else "it is wide"
        )
        return line + f": unsure ({why}; more full-length runs would narrow it)"


def union_space(spaces: list[SearchSpace]) -> SearchSpace:
    """One space covering every stage's: each numeric range from the lowest low to the
    highest high, categoricals with every choice any stage had (in first-seen order)."""
    first = spaces[0]
    params: list[Param] = []
    for p in first:
        others = [s[p.name] for s in spaces if p.name in s.names]
        if p.numeric:
            low = min(o.low for o in others)  # type: ignore[union-attr]
            high = max(o.high for o in others)  # type: ignore[union-attr]
            params.append(p.with_range(low, high))
        else:
            seen: dict[str, Any] = {}
            for o in others:
                for c in o.choices:  # type: ignore[union-attr]
                    seen.setdefault(repr(c), c)
            params.append(CategoricalParam(p.name, tuple(seen.values())))
    return SearchSpace(tuple(params))


def full_length(stages: list[tuple[SearchSpace, list[TrialRecord]]]) -> list[TrialRecord]:
    """The usable runs that went the longest any stage ran: their values compare."""
    runs = [r for _, recs in stages for r in recs if r.ok and r.finished]
    if not runs:
        return []
    ran = [int(r.attrs.get("epochs_run", r.epochs)) for r in runs]
    longest = max(ran)
    return [r for r, e in zip(runs, ran, strict=True) if e >= longest]


def final_region(
    stages: list[tuple[SearchSpace, list[TrialRecord]]],
    *,
    direction: str,
    original: SearchSpace | None = None,
    target: float = TARGET,
    temper: float | None = None,
    pad: float | None = None,
    min_runs: int = MIN_RUNS,
    fidelity: bool = True,
    floor: float | None = None,
) -> FinalRegion | None:
    """The reported promising region of a search: every stage's (searched space, runs),
    first stage first. The region is the smallest box (peeled) holding ``target`` of the
    posterior draws of the optimum's location, fitted on the full-length runs of every
    stage; ``original`` (default: the first stage's space) is what its volume is a share
    of. None when no stage has started."""
    from hpsearch.core import confidence as cf

    spaces = [s for s, _ in stages if s is not None]
    if not spaces:
        return None
    searched = union_space(spaces)
    original = original or spaces[0]
    every = [
        r
        for _, recs in stages
        for r in recs
        if r.finished
        and r.value is not None
        and math.isfinite(r.value)
        and not r.diverged
        and r.state in ("COMPLETE", "PRUNED")
        and all(p.name in r.params for p in searched)
    ]
    ran = [max(1, int(r.attrs.get("epochs_run", r.epochs))) for r in every]
    longest = max(ran, default=1)
    runs = [r for r, e in zip(every, ran, strict=True) if e >= longest and r.ok]
    if len(runs) < min_runs:
        return FinalRegion(
            searched,
            searched,
            None,
            _volume(searched, original),
            len(runs),
            len(runs),
            f"{len(runs)} full-length runs with a usable value; {min_runs} needed",
        )
    if not fidelity:
        every, ran = runs, [longest] * len(runs)
    draws = cf.optimum_draws(
        searched,
        [r.params for r in every],
        [float(r.value) for r in every],  # type: ignore[arg-type]
        direction=direction,
        fidelity=[math.log(e) / math.log(longest) if longest > 1 else 1.0 for e in ran]
        if fidelity
        else None,
        temper=cf.TEMPER if temper is None else temper,
        floor=cf.LS_FLOOR if floor is None else floor,
    )
    box = cf.peel(searched, draws, target, cf.PAD if pad is None else pad)
    space = cf.box_space(searched, box)
    conf = cf.box_mass(searched, draws, space)
    inside = sum(contains(space, r.params) for r in runs)
    return FinalRegion(space, searched, conf, _volume(space, original), len(runs), inside)


def _volume(region: SearchSpace, original: SearchSpace) -> float:
    """``region``'s volume over ``original``'s, every axis in its own scale."""
    share = 1.0
    for p in original:
        r = region[p.name]
        if not p.numeric:
            share *= len(r.choices) / len(p.choices)  # type: ignore[union-attr]
        else:
            width = p.to_scale(p.high) - p.to_scale(p.low)
            if width > 0:
                share *= (r.to_scale(r.high) - r.to_scale(r.low)) / width  # type: ignore[union-attr]
    return share
