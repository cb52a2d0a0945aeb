"""Search spaces: float (log or linear), int and categorical parameters.

Every numeric parameter has a *scale*: ``log10`` for ``log = true``, linear otherwise. All
sampling and narrowing happens in that scale, on the unit interval, so that "uniform" means
log-uniform for learning rates and regularization strengths, exactly as practitioners
sample them by hand.

What differs between the kinds lives on the parameter classes (as Optuna keeps it on its
distributions): the rest of hpsearch asks a parameter (``numeric``, ``from_unit``,
``grid_levels``, ``with_range``, ``contains``, ``extent``, ``listed``, ``format``,
``to_distribution``...) instead of switching on its class, so a new kind is one class here. ``numeric`` is the one flag a caller may
branch on (each class declares it as a literal, so a type checker narrows ``Param`` on
it): where code is by nature about ranges only (narrowing a range, a region's box, an edge
pressed). The module stays pure: Optuna is imported only inside ``to_distribution`` and
``suggest``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    import optuna

Choice = bool | int | float | str


class _Scaled:
    """What float and int parameters share: the scale every sampling and narrowing step
    works in (log10 when ``log``), and the hard limits ``min``/``max``."""

    numeric: ClassVar[Literal[True]] = True
    name: str
    log: bool
    low: float
    high: float
    min: float | None
    max: float | None

    def to_scale(self, x: float) -> float:
        return math.log10(x) if self.log else float(x)

    def from_scale(self, s: float) -> float:
        return 10.0**s if self.log else float(s)

    def scale_range(self) -> tuple[float, float]:
        """``[low, high]`` in the scale: decades for a log parameter."""
        return self.to_scale(self.low), self.to_scale(self.high)

    def extent(self) -> float:
        """How much the parameter spans: its range's width in the scale (a categorical
        counts its choices), to compare a narrowed parameter with the one it came from."""
        lo, hi = self.scale_range()
        return hi - lo

    def bound(self, edge: str) -> float:
        """The bound named ``edge``: ``low`` for "low", else ``high``."""
        return self.low if edge == "low" else self.high

    def contains(self, x: Any) -> bool:
        """``x`` lies in ``[low, high]``."""
        return bool(self.low <= x <= self.high)

    def listed(self) -> tuple[Choice, ...]:
        """The values the study file lists one by one: none for a range."""
        return ()

    def stage_bound(self, x: Any) -> Any:
        """A ``low``/``high`` a stage's table wrote, in this kind's numbers: as written
        (the spec's checks judge it); a float parameter turns an int into a float."""
        return x

    def within_limits(self, low: float, high: float) -> tuple[float, float]:
        """``[low, high]`` cut to the hard limits ``min``/``max``."""
        if self.min is not None:
            low = max(low, self.min)
        if self.max is not None:
            high = min(high, self.max)
        return low, high

    def describe_range(self) -> str:
        """``10^-5.00 .. 10^0.00`` for a log parameter, ``0 .. 0.5`` otherwise."""
        if self.log:
            return f"10^{math.log10(self.low):.2f} .. 10^{math.log10(self.high):.2f}"
        return f"{self.format(self.low)} .. {self.format(self.high)}"

    def format(self, x: Any) -> str:
        return str(x)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (see :func:`param_from_dict`); limits only where set."""
        d: dict[str, Any] = {"low": self.low, "high": self.high, "log": self.log}
        d.update(self._extra_dict())
        if self.min is not None:
            d["min"] = self.min
        if self.max is not None:
            d["max"] = self.max
        return d

    def _extra_dict(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class FloatParam(_Scaled):
    """A real-valued parameter in ``[low, high]``, sampled in log scale when ``log``.

    ``min``/``max`` are hard limits that narrowing never extends past (e.g. a dropout rate
    cannot go below 0), as opposed to ``low``/``high``, which are only a first guess.
    """

    name: str
    low: float
    high: float
    log: bool = False
    min: float | None = None
    max: float | None = None

    kind = "float"

    def from_unit(self, u: float) -> float:
        lo, hi = self.to_scale(self.low), self.to_scale(self.high)
        return self.inside(self.from_scale(lo + u * (hi - lo)))

    def inside(self, x: Any, fallback: Any = None) -> float:
        """``x`` clipped into ``[low, high]``. (Clip: 10**log10(x) can land one ulp outside
        the range, which Optuna rejects.)"""
        return min(max(float(x), self.low), self.high)

    def stage_bound(self, x: Any) -> Any:
        """The kind is [space]'s: a stage's ``low = 0`` is 0.0 here (an int would make
        the stage's range an int one); anything else, an int no float holds included, is
        left for the checks."""
        if type(x) is int:
            try:
                return float(x)
            except OverflowError:
                return x
        return x

    def grid_levels(self, k: int) -> list[float]:
        """``k`` values evenly spaced in the scale, ends included."""
        return [self.inside(self.from_scale(s)) for s in _even(self, k)]

    def max_levels(self) -> int:
        """How many distinct grid values the parameter can give: as many as asked."""
        return 1 << 30

    def with_range(self, low: float, high: float) -> FloatParam:
        """This parameter over ``[low, high]`` (a narrowed region), scale and limits kept."""
        return FloatParam(self.name, low, high, self.log, self.min, self.max)

    def outward(self, low: float, high: float) -> tuple[float, float]:
        """``[low, high]`` rounded outwards to 2 significant digits: a range to write in a
        study file."""
        return _round(low, up=False), _round(high, up=True)

    def spanned(self, values: list[Any]) -> FloatParam:
        """This parameter over exactly the span of ``values``."""
        return dataclasses.replace(self, low=float(min(values)), high=float(max(values)))

    def format(self, x: Any) -> str:
        """A compact human form: ``3.2e-04`` for log floats, 4 significant digits otherwise."""
        return f"{x:.2e}" if self.log else f"{x:.4g}"

    def to_distribution(self) -> optuna.distributions.FloatDistribution:
        """The Optuna distribution: what the dashboard, importance and TPE read."""
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, log=self.log)

    def suggest(self, trial: optuna.Trial) -> float:
        """Ask Optuna's sampler for a value (a slot without params gets TPE's pick)."""
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    @classmethod
    def from_dict(cls, name: str, d: dict[str, Any]) -> FloatParam:
        return cls(
            name,
            float(d["low"]),
            float(d["high"]),
            log=d.get("log", False),
            min=d.get("min"),
            max=d.get("max"),
        )


@dataclass(frozen=True)
class IntParam(_Scaled):
    """An integer parameter in ``[low, high]`` on a ``step`` grid, log-spaced when ``log``."""

    name: str
    low: int
    high: int
    log: bool = False
    step: int = 1
    min: int | None = None
    max: int | None = None

    kind = "int"

    def snap(self, x: float) -> int:
        """The nearest allowed value: on the step grid and inside ``[low, high]``."""
        k = round((x - self.low) / self.step)
        return int(min(max(self.low + k * self.step, self.low), self.high))

    def inside(self, x: Any, fallback: Any = None) -> int:
        """``x`` snapped onto the step grid, inside ``[low, high]``."""
        return self.snap(x)

    def from_unit(self, u: float) -> int:
        # Widen by half a step each side so that the end values are as likely as the inner
        # ones (log ints have step 1 and low >= 1, so low - 0.5 stays positive).
        half = 0.5 * self.step
        lo, hi = self.to_scale(self.low - half), self.to_scale(self.high + half)
        return self.snap(self.from_scale(lo + u * (hi - lo)))

    @property
    def size(self) -> int:
        """How many distinct values the parameter can take."""
        return (self.high - self.low) // self.step + 1

    def grid_levels(self, k: int) -> list[int]:
        """``k`` values evenly spaced in the scale, ends included, snapped onto the grid."""
        return [self.snap(self.from_scale(s)) for s in _even(self, k)]

    def max_levels(self) -> int:
        """How many distinct grid values the parameter can give."""
        k = self.size
        while k > 1 and len(set(self.grid_levels(k))) < k:  # log ints bunch up at the low end
            k -= 1
        return k

    def with_range(self, low: float, high: float) -> IntParam:
        """This parameter over ``[low, high]`` rounded outwards onto the step grid anchored
        at the original low, kept >= 1 for log and within the limits, and never a single
        value (the fine stage needs a neighbour to compare)."""
        s = self.step
        lo_i = self.low + math.floor((low - self.low) / s) * s
        hi_i = self.low + math.ceil((high - self.low) / s) * s
        floor = max(
            1 if self.log else -(1 << 62), self.min if self.min is not None else -(1 << 62)
        )
        ceil = self.max if self.max is not None else 1 << 62
        while lo_i < floor:
            lo_i += s
        while hi_i > ceil:
            hi_i -= s
        if hi_i <= lo_i:  # a single value left: give the fine stage a neighbour to compare
            hi_i = lo_i + s if lo_i + s <= ceil else hi_i
            lo_i = lo_i if hi_i > lo_i else lo_i - s
        return IntParam(self.name, int(lo_i), int(hi_i), self.log, s, self.min, self.max)

    def outward(self, low: float, high: float) -> tuple[float, float]:
        """``[low, high]`` rounded outwards onto the step grid (>= 1 for log): a range to
        write in a study file."""
        s = self.step
        low = self.low + math.floor((low - self.low) / s) * s
        high = self.low + math.ceil((high - self.low) / s) * s
        return (max(low, 1) if self.log else low), high

    def spanned(self, values: list[Any]) -> IntParam:
        """This parameter over exactly the span of ``values``, on step 1 (values from stages
        whose grids differ)."""
        return dataclasses.replace(self, low=int(min(values)), high=int(max(values)), step=1)

    def to_distribution(self) -> optuna.distributions.IntDistribution:
        """The Optuna distribution: what the dashboard, importance and TPE read."""
        from optuna.distributions import IntDistribution

        return IntDistribution(self.low, self.high, log=self.log, step=self.step)

    def suggest(self, trial: optuna.Trial) -> int:
        """Ask Optuna's sampler for a value (a slot without params gets TPE's pick)."""
        return trial.suggest_int(self.name, self.low, self.high, step=self.step, log=self.log)

    def _extra_dict(self) -> dict[str, Any]:
        return {"step": self.step}

    @classmethod
    def from_dict(cls, name: str, d: dict[str, Any]) -> IntParam:
        return cls(
            name,
            d["low"],
            d["high"],
            log=d.get("log", False),
            step=d["step"],
            min=d.get("min"),
            max=d.get("max"),
        )


@dataclass(frozen=True)
class CategoricalParam:
    """A parameter taking one of a fixed tuple of choices."""

    name: str
    choices: tuple[Choice, ...]

    kind = "categorical"
    numeric: ClassVar[Literal[False]] = False

    def from_unit(self, u: float) -> Choice:
        return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]

    def inside(self, x: Any, fallback: Any = None) -> Choice:
        """``x`` if it is a choice, else ``fallback``, else the first choice. By repr, as
        narrowing compares choices (1 and True are different choices)."""
        kept: dict[str, Choice] = {repr(c): c for c in self.choices}
        return kept.get(repr(x), kept.get(repr(fallback), self.choices[0]))

    def grid_levels(self, k: int) -> list[Choice]:
        """Every choice: a grid takes them all."""
        return list(self.choices)

    def max_levels(self) -> int:
        return len(self.choices)

    def extent(self) -> float:
        """How much the parameter spans: its number of choices."""
        return float(len(self.choices))

    def contains(self, x: Any) -> bool:
        """``x`` is one of the choices, by repr (1 and True are different choices)."""
        return repr(x) in {repr(c) for c in self.choices}

    def listed(self) -> tuple[Choice, ...]:
        """The values the study file lists one by one: the choices."""
        return self.choices

    def keeping(self, values: Iterable[Any]) -> CategoricalParam:
        """The choices among ``values`` (by repr), in this parameter's order."""
        seen = {repr(v) for v in values}
        return CategoricalParam(self.name, tuple(c for c in self.choices if repr(c) in seen))

    def spanned(self, values: list[Any]) -> CategoricalParam:
        """The choices tried."""
        return self.keeping(values)

    def describe_range(self) -> str:
        return "{" + ", ".join(map(str, self.choices)) + "}"

    def format(self, x: Any) -> str:
        return str(x)

    def to_distribution(self) -> optuna.distributions.CategoricalDistribution:
        """The Optuna distribution: what the dashboard, importance and TPE read."""
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(list(self.choices))

    def suggest(self, trial: optuna.Trial) -> Choice:
        """Ask Optuna's sampler for a value (a slot without params gets TPE's pick)."""
        value = trial.suggest_categorical(self.name, list(self.choices))
        assert value is not None  # one of the choices, and None is never one
        return value

    def to_dict(self) -> dict[str, Any]:
        return {"choices": list(self.choices)}

    @classmethod
    def from_dict(cls, name: str, d: dict[str, Any]) -> CategoricalParam:
        return cls(name, tuple(d["choices"]))


Param = FloatParam | IntParam | CategoricalParam
NumericParam = FloatParam | IntParam


def _even(p: NumericParam, k: int) -> list[float]:
    """``k`` points evenly spaced over ``p``'s range in its scale, ends included (the
    middle for one)."""
    lo, hi = p.scale_range()
    if k == 1:
        return [(lo + hi) / 2]
    return [lo + (hi - lo) * i / (k - 1) for i in range(k)]


def _round(x: float, *, up: bool) -> float:
    """``x`` rounded to 2 significant digits, away from the range (down for a low end)."""
    if x == 0:
        return 0.0
    q = 10.0 ** (math.floor(math.log10(abs(x))) - 1)
    return float(f"{(math.ceil if up else math.floor)(x / q) * q:.2g}")


@dataclass(frozen=True)
class SearchSpace:
    """An ordered tuple of parameters; the order fixes the point sets' dimensions."""

    params: tuple[Param, ...] = field(default_factory=tuple)

    def __iter__(self) -> Iterator[Param]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    def __getitem__(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def replace(self, params: Iterable[Param]) -> SearchSpace:
        """This space with each parameter of ``params`` in place of the one of its name
        (a stage's own ranges over the ones it was given); the order stays this space's."""
        given = {p.name: p for p in params}
        return SearchSpace(tuple(given.get(p.name, p) for p in self.params))

    def from_unit(self, u: list[float]) -> dict[str, Any]:
        """Map a point of the unit cube to parameter values."""
        return {p.name: p.from_unit(float(x)) for p, x in zip(self.params, u, strict=True)}

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """JSON-ready form, stored as a stage study's ``space`` user attr."""
        return {p.name: p.to_dict() for p in self.params}

    @classmethod
    def from_dict(cls, data: dict[str, dict[str, Any]]) -> SearchSpace:
        return cls(tuple(param_from_dict(name, d) for name, d in data.items()))


def param_from_dict(name: str, d: dict[str, Any]) -> Param:
    """Inverse of ``to_dict``; the keys tell the kind. Input is trusted (validated by
    ``spec``)."""
    if "choices" in d:
        return CategoricalParam.from_dict(name, d)
    if isinstance(d["low"], int) and isinstance(d["high"], int) and "step" in d:
        return IntParam.from_dict(name, d)
    return FloatParam.from_dict(name, d)
