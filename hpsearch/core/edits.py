"""Edits of a launched study file: which a relaunch applies, and which it refuses.

Editing the study file and launching again is how a user acts on a report. What already
ran stays part of the search, so an edit is *compatible* when everything stored is still a
correct part of the edited search:

- more trials in a prepared stage: new slots are appended, and the random and Sobol point
  sequences continue (the first points are the ones that ran); a grid cannot grow;
- a stage appended after the last; any change to a stage not prepared yet (its trials,
  epochs, sampler, keep, margin, promote, its own ranges); [space] and [fixed] while no
  stage is prepared (the first stage searches [space]);
- ``max_failures``; ``budget`` raised for a planned search (``plan.extend_plan``).

Everything else changes what stored trials mean (the objective, metric, direction, seed;
a prepared stage's space, epochs or sampler; fewer trials than a prepared stage queued) and
is refused, with the two ways to start afresh. Whether a stage is prepared is the
database's to say (its study has ``ready``): the caller passes the names in, and this
module stays pure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from hpsearch.core.plan import extend_plan
from hpsearch.core.spec import DEFAULT_MAX_FAILURES, STAGE_KEYS, StudySpec
from hpsearch.core.stage_spec import StageSpec

ABSENT = "<absent>"

#: Top-level keys no edit may change, and why.
IDENTITY = {
    "name": "it is the search's name",
    "objective": "every stored trial ran this objective",
    "metric": "every stored value is this metric",
    "direction": "the stored trials were ranked and narrowed this way",
    "seed": "the seed fixes every stage's points and trial seeds",
}
#: Top-level keys that say how the search runs, not what it searches: always applied.
RUNNING = ("max_failures", "trial_timeout")
#: Keys as ``StudySpec.to_dict`` leaves them out when they have their default.
TOP_DEFAULTS = {"max_failures": DEFAULT_MAX_FAILURES, "trial_timeout": None}
#: What a stored stage leaves out when it has the default: StageSpec's own defaults (its
#: ``space`` is stored as a table of ranges, absent when the stage has none).
STAGE_DEFAULTS = {
    **{
        f.name: f.default
        for f in dataclasses.fields(StageSpec)
        if f.default is not dataclasses.MISSING
    },
    "space": {},
}


@dataclass(frozen=True)
class Change:
    """One difference between the stored spec and the file's."""

    field: str  # named as spec errors name fields: "seed", "space.lr", "stage[0].trials"
    stored: Any
    file: Any
    line: str  # what changed, for people: "coarse trials 40 -> 60"
    refused: str = ""  # why it cannot be applied; empty: it can

    @property
    def compatible(self) -> bool:
        return not self.refused

    def diff(self) -> str:
        """The refusal's form: ``seed: stored 0, file 1 (why)``."""
        why = f" ({self.refused})" if self.refused else ""
        stored, file = (ABSENT if v == ABSENT else repr(v) for v in (self.stored, self.file))
        return f"{self.field}: stored {stored}, file {file}{why}"


def classify(
    stored: dict[str, Any], file: dict[str, Any], prepared: Collection[str]
) -> list[Change]:
    """Every difference between two ``StudySpec.to_dict`` forms, each either compatible
    or refused with the reason. ``prepared``: the names of the stages the database has
    prepared (always a first few: a stage is prepared once the one before it finished)."""
    stored, file = {**TOP_DEFAULTS, **stored}, {**TOP_DEFAULTS, **file}
    old_stages, new_stages = stored.get("stage", []), file.get("stage", [])
    started = bool(old_stages) and old_stages[0]["name"] in prepared
    first = old_stages[0]["name"] if old_stages else ""
    out = []
    for key in _keys(stored, file, skip=("stage",)):
        a, b = stored.get(key, ABSENT), file.get(key, ABSENT)
        if key in ("space", "fixed") and isinstance(a, dict) and isinstance(b, dict):
            out += [_top(f"{key}.{k}", x, y, started, first) for k, x, y in _leaves(a, b)]
        elif a != b:
            out.append(_top(key, a, b, started, first))
    for i in range(max(len(old_stages), len(new_stages))):
        a = old_stages[i] if i < len(old_stages) else None
        b = new_stages[i] if i < len(new_stages) else None
        out += _stage_changes(i, a, b, prepared)
    return out


def _keys(a: dict[str, Any], b: dict[str, Any], skip: tuple[str, ...] = ()) -> list[str]:
    return [k for k in [*a, *(k for k in b if k not in a)] if k not in skip]


def _leaves(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """The keys of two tables whose values differ (absent on one side included)."""
    return [
        (k, a.get(k, ABSENT), b.get(k, ABSENT))
        for k in _keys(a, b)
        if a.get(k, ABSENT) != b.get(k, ABSENT)
    ]


def _top(field: str, a: Any, b: Any, started: bool, first: str) -> Change:
    """A top-level key: the identity never changes, how it runs always may, and the rest
    (the first stage's [space], [fixed], the plan's max_epochs) only before anything ran;
    a planned search's budget may also grow."""
    line = _line(field, a, b)
    key = field.split(".")[0]
    if key in IDENTITY:
        return Change(field, a, b, line, IDENTITY[key])
    if key in RUNNING or not started:
        return Change(field, a, b, line)
    if key == "budget" and isinstance(a, int) and isinstance(b, int) and b > a:
        return Change(field, a, b, line)
    why = {
        "space": f"stage {first} is prepared on [space]; to search other ranges in a later "
        "stage, give that stage its own [stage.space.NAME] table",
        "fixed": f"the trials of stage {first} ran with the stored [fixed] values",
        "budget": "once a stage is prepared, a planned search's budget may only grow",
        "max_epochs": "the planned stages that are prepared run epochs derived from it",
    }
    return Change(field, a, b, line, why.get(key, f"stage {first} is prepared with it"))


def _stage_changes(
    i: int, a: dict[str, Any] | None, b: dict[str, Any] | None, prepared: Collection[str]
) -> list[Change]:
    field = f"stage[{i}]"
    if a is None:
        assert b is not None
        return [Change(field, ABSENT, b["name"], f"stage {b['name']} appended: {_plan(b)}")]
    ran = a["name"] in prepared
    if b is None:
        why = f"stage {a['name']} is prepared" if ran else ""
        return [Change(field, a["name"], ABSENT, f"stage {a['name']} removed", why)]
    if a["name"] != b["name"]:
        line = f"stage {a['name']} replaced by stage {b['name']}: {_plan(b)}"
        if i == 0:
            why = f"the search is stored under its first stage's name ({a['name']})"
        else:
            why = f"stage {a['name']} is prepared under this name" if ran else ""
        return [Change(f"{field}.name", a["name"], b["name"], line, why)]
    a, b = {**STAGE_DEFAULTS, **a}, {**STAGE_DEFAULTS, **b}
    out = []
    for key in STAGE_KEYS:
        if key == "space":
            for name, x, y in _leaves(a[key], b[key]):
                out.append(_stage_field(f"{field}.space.{name}", a, x, y, ran))
        elif a[key] != b[key]:
            out.append(_stage_field(f"{field}.{key}", a, a[key], b[key], ran))
    return out


def _stage_field(field: str, stage: dict[str, Any], a: Any, b: Any, ran: bool) -> Change:
    """One key of a stage in both specs: free before the stage is prepared; after, only
    more trials, and only where the points are a sequence that can go on."""
    name = stage["name"]
    key = field.split(".", 1)[1]
    line = _line(f"{name} {key}", a, b)
    if not ran or key in RUNNING:
        return Change(field, a, b, line)
    if key != "trials":
        why = f"stage {name} is prepared with it; change a stage not prepared yet, or append one"
        return Change(field, a, b, line, why)
    if b < a:
        return Change(field, a, b, line, f"stage {name} has {a} slots queued or run already")
    if stage["sampler"] == "grid":
        why = f"stage {name} is a grid of exactly {a} points, which cannot grow; append a stage"
        return Change(field, a, b, line, why)
    return Change(field, a, b, f"{line} ({b - a} slots appended)")


def _line(label: str, a: Any, b: Any) -> str:
    if a == ABSENT:
        return f"{label} added: {_show(b)}"
    if b == ABSENT:
        return f"{label} removed"
    if isinstance(a, dict) and isinstance(b, dict):  # a parameter: the keys that changed
        return f"{label} " + ", ".join(_line(k, x, y) for k, x, y in _leaves(a, b))
    return f"{label} {_show(a)} -> {_show(b)}"


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_show(v)}" for k, v in value.items())
    return repr(value) if isinstance(value, str) else str(value)


def _plan(stage: dict[str, Any]) -> str:
    return f"{stage['trials']} trials x {stage['epochs']} epoch(s), {stage['sampler']}"


def refusal(name: str, changes: list[Change]) -> str:
    """Why a relaunch is refused: the diff of what cannot change, what could, and the two
    ways to start afresh."""
    lines = [
        f"search {name!r} already exists in this storage with a different spec, and these "
        "edits would change what already ran:",
        *(f"  {c.diff()}" for c in changes if not c.compatible),
    ]
    fine = [c.line for c in changes if c.compatible]
    if fine:
        lines += ["(these ones could be applied on their own:", *(f"  {x}" for x in fine)]
        lines[-1] += ")"
    lines += [
        "to run the edited file as a new search, either",
        f'  - give it a new name: name = "{name}-2" in the study file, or',
        f"  - delete the stored search first: hpsearch delete {name}",
    ]
    return "\n".join(lines)


def conflict(name: str, theirs: list[str], mine: list[str]) -> str:
    """Why a relaunch is refused when another launch edited the search between this one's
    read of the stored spec and its write: applying this file now would undo the other's
    edits (the file holds the old values), so nothing of it is applied."""
    return "\n".join(
        [
            f"search {name!r} was edited by another launch while this one applied its "
            "edits; that launch changed:",
            *(f"  {line}" for line in theirs or ["(the stored spec)"]),
            "and this file's edits were not applied (applying them now would undo those):",
            *(f"  {line}" for line in mine),
            "merge the two edits into the study file and launch again "
            "(hpsearch launch --dry-run FILE shows what it would change)",
        ]
    )


def resolve_plan(stored: StudySpec, file: StudySpec, prepared: int) -> StudySpec:
    """The file's spec, with a planned search's stages as the stored search has them.

    A planned spec's stages are a function of ``budget`` and ``max_epochs``; the stored
    stages are what ran, so an unchanged budget keeps them (a later hpsearch may plan
    differently) and a raised one appends to them (``plan.extend_plan``) once ``prepared``
    stages are prepared. Anything else is compared as the file plans it.
    """
    if file.budget is None or stored.budget is None or file.max_epochs != stored.max_epochs:
        return file
    if file.budget == stored.budget:
        return dataclasses.replace(file, stages=stored.stages)
    if file.budget > stored.budget and prepared:
        assert file.max_epochs is not None
        stages = extend_plan(stored.stages, prepared, file.budget, file.max_epochs)
        return dataclasses.replace(file, stages=stages)
    return file
