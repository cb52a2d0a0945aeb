"""Search spaces: float (log or linear), int and categorical parameters.

Every numeric parameter has a *scale*: ``log10`` for ``log = true``, linear otherwise. All
sampling and narrowing happens in that scale, on the unit interval, so that "uniform" means
log-uniform for learning rates and regularization strengths, exactly as practitioners
sample them by hand. This module is pure (no Optuna): the storage layer maps parameters to
Optuna distributions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

Choice = bool | int | float | str


class _Scaled:
    """The scale every sampling and narrowing step works in: log10 when ``log``."""

    log: bool
    low: float
    high: float

    def to_scale(self, x: float) -> float:
        return math.log10(x) if self.log else float(x)

    def from_scale(self, s: float) -> float:
        return 10.0**s if self.log else float(s)


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
        # Clip: 10**log10(x) can land one ulp outside [low, high], which Optuna rejects.
        return min(max(self.from_scale(lo + u * (hi - lo)), self.low), self.high)


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


@dataclass(frozen=True)
class CategoricalParam:
    """A parameter taking one of a fixed tuple of choices."""

    name: str
    choices: tuple[Choice, ...]

    kind = "categorical"

    def from_unit(self, u: float) -> Choice:
        return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]


Param = FloatParam | IntParam | CategoricalParam
NumericParam = FloatParam | IntParam


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
        return {p.name: param_to_dict(p) for p in self.params}

    @classmethod
    def from_dict(cls, data: dict[str, dict[str, Any]]) -> SearchSpace:
        return cls(tuple(param_from_dict(name, d) for name, d in data.items()))


def param_to_dict(p: Param) -> dict[str, Any]:
    if isinstance(p, CategoricalParam):
        return {"choices": list(p.choices)}
    d: dict[str, Any] = {"low": p.low, "high": p.high, "log": p.log}
    if isinstance(p, IntParam):
        d["step"] = p.step
    if p.min is not None:
        d["min"] = p.min
    if p.max is not None:
        d["max"] = p.max
    return d


def param_from_dict(name: str, d: dict[str, Any]) -> Param:
    """Inverse of :func:`param_to_dict`. Input is trusted (validated by ``spec``)."""
    if "choices" in d:
        return CategoricalParam(name, tuple(d["choices"]))
    if isinstance(d["low"], int) and isinstance(d["high"], int) and "step" in d:
        return IntParam(
            name,
            d["low"],
            d["high"],
            log=d.get("log", False),
            step=d["step"],
            min=d.get("min"),
            max=d.get("max"),
        )
    return FloatParam(
        name,
        float(d["low"]),
        float(d["high"]),
        log=d.get("log", False),
        min=d.get("min"),
        max=d.get("max"),
    )


def format_value(p: Param, x: Any) -> str:
    """A compact human form: ``3.2e-04`` for log floats, 4 significant digits otherwise."""
    if isinstance(p, FloatParam):
        return f"{x:.2e}" if p.log else f"{x:.4g}"
    return str(x)
