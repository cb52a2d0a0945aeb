"""Constraints that check a value and word its problem: the one template of every message.

Modelled on scikit-learn's ``utils/_param_validation.py`` (``Interval``, ``Options``, type
constraints, each able to say what it wants), with one difference: a :class:`Checker`
collects every problem with its field instead of raising at the first, so that a study
file's errors (and a CNN config's) are all reported in one pass. Every message reads
"must be <what the constraints say>, but got <value>", or, for a rule between two
values, "`<rule>` must hold, but got a = ..., b = ...". Pure: no torch, no optuna.
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from collections.abc import Iterable, Sequence
from typing import Any

_TYPE_NAMES = {
    bool: "true/false",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a table",
}


class Constraint:
    """What a value must be; ``str()`` says it after "must be"."""

    def is_satisfied_by(self, value: Any) -> bool:
        raise NotImplementedError

    def coerce(self, value: Any) -> Any:
        """The value as the caller keeps it once it satisfies the constraint."""
        return value

    def hint(self, value: Any) -> str:
        """Words that close the message (a did-you-mean), or ""."""
        return ""


class InstanceOf(Constraint):
    """One of ``types``; a bool is no int here (TOML's ``true`` where a number belongs is a
    mistake, though Python counts it as one)."""

    def __init__(self, *types: type, words: str = "") -> None:
        self.types, self.words = types, words

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, bool) and bool not in self.types:
            return False
        return isinstance(value, self.types)

    def __str__(self) -> str:
        if self.words:
            return self.words
        shown = [t for t in self.types if not (t is int and float in self.types)]
        return " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in shown)


class Interval(Constraint):
    """A number between ``low`` and ``high`` (``None``: unbounded), closed on the sides
    ``closed`` names ("both", "left", "right" or "neither"). ``kind`` int accepts integral
    floats (TOML and some samplers hand over ``16.0`` for ``16``) and coerces them; ``kind``
    None takes a value already known to be a number (its type was checked on its own)."""

    def __init__(
        self,
        kind: type | None,
        low: float | None,
        high: float | None,
        closed: str = "both",
    ) -> None:
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def is_satisfied_by(self, value: Any) -> bool:
        if self.kind is not None:
            if not isinstance(value, numbers.Real) or isinstance(value, bool):
                return False
            if not finite(value):
                return False
            if self.kind is int and not float(value).is_integer():
                return False
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.low is not None and not (value >= self.low if left else value > self.low):
            return False
        return self.high is None or (value <= self.high if right else value < self.high)

    def coerce(self, value: Any) -> Any:
        return self.kind(value) if self.kind is not None else value

    def __str__(self) -> str:
        kind = _TYPE_NAMES[self.kind] if self.kind is not None else ""
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.high is None:
            bound = f"{'>=' if left else '>'} {self.low}"
        elif self.low is None:
            bound = f"{'<=' if right else '<'} {self.high}"
        else:
            bound = f"in {'[' if left else '('}{self.low}, {self.high}{']' if right else ')'}"
        return f"{kind} {bound}".strip()


class Options(Constraint):
    """One of ``options``, of the same type (TOML's ``1`` is not ``true``), with a
    did-you-mean for a near miss among string options."""

    def __init__(self, options: Iterable[Any]) -> None:
        self.options = tuple(options)

    def is_satisfied_by(self, value: Any) -> bool:
        return any(type(value) is type(o) and value == o for o in self.options)

    def hint(self, value: Any) -> str:
        words = [o for o in self.options if isinstance(o, str)]
        if len(words) < 2 or not isinstance(value, str):
            return ""
        close = difflib.get_close_matches(value, words, n=1)
        return f"did you mean {close[0]!r}?" if close else ""

    def __str__(self) -> str:
        shown = ", ".join(repr(o) for o in self.options)
        return shown if len(self.options) == 1 else f"one of {shown}"


class Pattern(Options):
    """A string matching ``regex``, described by ``shown`` (the options a user reads, such
    as ``cuda:N``) or by ``words``."""

    def __init__(self, regex: str, shown: Sequence[str] = (), words: str = "") -> None:
        super().__init__(shown)
        self.regex, self.words = re.compile(regex), words

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, str) and self.regex.fullmatch(value) is not None

    def hint(self, value: Any) -> str:
        return ""  # a near miss of `cuda:N` is no value to suggest

    def __str__(self) -> str:
        return self.words or super().__str__()


class Finite(Constraint):
    """A number that is not NaN or infinite (NaN never equals itself, so a stored spec with
    one would always read as changed)."""

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, numbers.Real) and finite(value)

    def hint(self, value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool) and not finite(value):
            return f"no float holds it (an integer of {len(str(abs(value)))} digits)"
        return ""

    def __str__(self) -> str:
        return "finite"


def finite(value: Any) -> bool:
    """``math.isfinite`` that says False for an integer no float holds (``10**400``)
    instead of raising OverflowError."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def shown(value: Any, limit: int = 60) -> str:
    """``repr(value)``, a huge integer shortened (``1000...0000 (401 digits)``)."""
    text = repr(value)
    if isinstance(value, int) and len(text) > limit:
        return f"{text[:8]}...{text[-4:]} ({len(text.lstrip('-'))} digits)"
    return text


def must_be(value: Any, *constraints: Constraint, fix: str = "") -> str:
    """The template: "must be X or Y, but got value; fix; did you mean ...?" (the hint is
    the first constraint's)."""
    wanted = " or ".join(str(c) for c in constraints)
    return _joined(f"must be {wanted}, but got {shown(value)}", fix, constraints[0].hint(value))


def must_hold(rule: str, when: str = "", fix: str = "", **values: Any) -> str:
    """The template of a rule between values: "`rule` must hold [when], but got a = 1,
    b = 2; fix"."""
    shown = ", ".join(f"{k} = {v!r}" for k, v in values.items())
    return _joined(f"`{rule}` must hold{' ' + when if when else ''}, but got {shown}", fix)


def _joined(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


class CheckError(ValueError):
    """Values that break their constraints; ``problems`` holds ``(field, message)`` pairs,
    and the text reads "`field` message" for each (the CNN configs' form)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        # A rule's message names its values itself ("`momentum > 0` must hold ...").
        text = [m if m.startswith("`") or not f else f"`{f}` {m}" for f, m in problems]
        super().__init__("; ".join(text))


class Checker:
    """Collects ``(field, message)`` problems so that all of them are reported at once."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def error(self, fld: str, msg: str) -> None:
        """A problem no constraint words (a relation, a missing key with its fix)."""
        self.problems.append((fld, msg))

    def check(self, fld: str, value: Any, *constraints: Constraint, fix: str = "") -> bool:
        """Whether ``value`` satisfies one of ``constraints``; records the problem if not."""
        if any(c.is_satisfied_by(value) for c in constraints):
            return True
        self.error(fld, must_be(value, *constraints, fix=fix))
        return False

    def holds(
        self, fld: str, ok: bool, rule: str, when: str = "", fix: str = "", **values: Any
    ) -> bool:
        """Records ``rule`` as broken unless ``ok``; ``values`` are the ones it relates."""
        if not ok:
            self.error(fld, must_hold(rule, when, fix, **values))
        return ok

    def coerce(self, fld: str, value: Any, constraint: Constraint) -> Any:
        """``value`` as ``constraint`` coerces it, or unchanged (with its problem noted)."""
        return constraint.coerce(value) if self.check(fld, value, constraint) else value

    def unknown_keys(self, table: dict[str, Any], allowed: Sequence[str], where: str) -> None:
        allowed = tuple(allowed)
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"; did you mean `{close[0]}`?" if close else ""
                fld = f"{where}.{key}" if where else key
                self.error(fld, f"unknown key{hint} (allowed: {', '.join(allowed)})")

    def typed(
        self,
        table: dict[str, Any],
        key: str,
        types: tuple[type, ...],
        where: str,
        default: Any = None,
        required: bool = False,
    ) -> Any:
        """``table[key]`` if it is one of ``types``, else ``default`` (the problem noted)."""
        fld = f"{where}.{key}" if where else key
        if key not in table:
            if required:
                self.error(fld, "is required")
            return default
        value = table[key]
        return value if self.check(fld, value, InstanceOf(*types)) else default

    def require(self, fld: str, value: Any, constraint: Constraint) -> Any:
        """``value`` as ``constraint`` coerces it; raises :class:`CheckError` if it breaks it
        (for one value checked on its own, outside a table or config)."""
        value = self.coerce(fld, value, constraint)
        self.raise_errors()
        return value

    def raise_errors(self) -> None:
        """Raise :class:`CheckError` with every problem collected, if any."""
        if self.problems:
            raise CheckError(self.problems)
