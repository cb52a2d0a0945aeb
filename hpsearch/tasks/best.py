"""``hpsearch best``: the configuration a search recommends, exactly, in three forms.

The winner is :func:`hpsearch.core.records.recommended` (the best usable trial among the
longest runs). Everything needed to train it again is printed at full precision (floats
as ``repr``, which reads back to the same number): every parameter, ``[fixed]`` ones
included, the trial's seed and the data split seed, so that nobody has to dig them out of
user attrs. The TOML form is a ``[fixed]`` table to paste into a study file; the JSON form
is one object for scripts. Pure: computed from a :class:`SearchView`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any

from hpsearch.core.errors import UserError
from hpsearch.core.records import TrialRecord, recommended
from hpsearch.engine.loader import prepare_params
from hpsearch.report.search import SearchView


class NoWinner(UserError):
    """The stage asked for does not exist, or no trial has given a usable value yet."""


@dataclass(frozen=True)
class Winner:
    """The recommended trial of a search (or of one stage) and what reproduces it."""

    search: str
    objective: str
    metric: str
    direction: str
    record: TrialRecord
    fixed: dict[str, Any]  # the study file's [fixed] table
    split_seed: int | None  # the built-in CNN's data split; None for other objectives

    @property
    def params(self) -> dict[str, Any]:
        """Every parameter of the trial: the searched values and the ``[fixed]`` ones."""
        return {**self.fixed, **self.record.params}

    @property
    def value(self) -> float:
        assert self.record.value is not None, "a winner is a usable trial"
        return self.record.value

    @property
    def epochs(self) -> int:
        return self.record.epochs

    @property
    def seed(self) -> int | None:
        return self.record.attrs.get("seed")

    def to_dict(self) -> dict[str, Any]:
        """The ``--format json`` object."""
        r = self.record
        return {
            "search": self.search,
            "objective": self.objective,
            "metric": self.metric,
            "direction": self.direction,
            "value": self.value,
            "stage": r.stage,
            "trial": r.number,
            "slot": r.slot,
            "epochs": self.epochs,
            "seed": self.seed,
            "split_seed": self.split_seed,
            "params": self.params,
            "fixed": sorted(self.fixed),
        }


def find_winner(view: SearchView, stage: str | None = None) -> Winner:
    """The recommended trial of the whole search, or of ``stage`` only."""
    spec = view.spec
    stages = view.stages
    if stage is not None:
        stages = [v for v in stages if v.stage.name == stage]
        if not stages:
            names = ", ".join(v.stage.name for v in view.stages)
            raise NoWinner(f"--stage {stage}: search {spec.name} has no such stage ({names})")
    records = [r for v in stages for r in v.records]
    best = recommended(records, spec.direction)
    if best is None:
        where = f"stage {stage} of search {spec.name}" if stage else f"search {spec.name}"
        done = sum(r.finished for r in records)
        raise NoWinner(
            f"no trial of {where} has given a usable value yet ({done} finished); "
            f"see hpsearch report {spec.name}"
        )
    winner = Winner(spec.name, spec.objective, spec.metric, spec.direction, best, spec.fixed, None)
    # The split seed as the built-in CNN's trials got it (None for other objectives).
    split = prepare_params(spec, winner.params).get("split_seed")
    return dataclasses.replace(winner, split_seed=split)


def format_winner(winner: Winner, fmt: str, commands: str = "") -> str:
    """The winner as ``text``, ``json`` or ``toml``."""
    if fmt == "json":
        return format_json(winner)
    if fmt == "toml":
        return format_toml(winner)
    return format_text(winner, commands)


def format_json(winner: Winner) -> str:
    return json.dumps(winner.to_dict(), indent=2)


def format_toml(winner: Winner) -> str:
    """A ``[fixed]`` table of every parameter, headed by comments saying where it came
    from; ``tomllib`` reads it back to the same values."""
    r = winner.record
    lines = [
        f"# hpsearch best {winner.search}: {winner.metric} = {winner.value!r} "
        f"({winner.direction}), stage {r.stage}, trial {r.number}",
        f"# trained {r.epochs} epoch(s) with trial seed {winner.seed}",
    ]
    if winner.split_seed is not None:
        lines.append(
            f"# data split seed {winner.split_seed}: the search's seed, unless [fixed] sets "
            "split_seed; keep it to train on the same split"
        )
    lines.append("[fixed]")
    lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in winner.params.items()]
    return "\n".join(lines)


def format_text(winner: Winner, commands: str = "") -> str:
    """For people: the value, where it came from, every parameter at full precision, and
    the commands that take it further (``commands``: e.g. a ``--storage`` to add)."""
    r = winner.record
    lines = [
        f"best of search {winner.search}: {winner.metric} = {winner.value!r} ({winner.direction})",
        f"  stage {r.stage}, trial {r.number} (slot {r.slot}), {r.epochs} epoch(s), "
        f"trial seed {winner.seed}",
    ]
    if winner.split_seed is not None:
        lines.append(f"  data split seed {winner.split_seed} (split_seed)")
    lines.append("  params:")
    width = max(map(len, winner.params), default=0)
    for key, value in winner.params.items():
        tag = "  [fixed]" if key in winner.fixed else ""
        lines.append(f"    {key:<{width}} = {toml_value(value)}{tag}")
    name = winner.search
    lines += [
        f"retrain it:   hpsearch best {name} --retrain --save model.pt{commands}",
        f"paste it:     hpsearch best {name} --format toml{commands}",
    ]
    return "\n".join(lines)


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


# The standard library reads TOML (tomllib) but does not write it. Parameters are JSON
# values (the spec is stored as JSON), so these few rules cover every one of them.
def toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def toml_value(value: Any) -> str:
    """A JSON value as TOML: floats by ``repr`` (exact), strings JSON-quoted (a JSON
    string is a valid TOML basic string), lists as arrays, dicts as inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # always has a "." or an exponent: a TOML float, read back exact
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{toml_key(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{" + (f" {inner} " if inner else "") + "}"
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) as TOML")
