"""``hpsearch compare``: a search against flat grid and random search at equal compute.

The baselines get the coarse-to-fine plan's whole epoch budget (``StudySpec.total_epochs``)
spent flat: every trial runs the final stage's epochs, over the file's full space. Each is
a one-stage search of its own (a derived :class:`StudySpec`) stored beside the search as
``NAME/grid-baseline`` and ``NAME/random-baseline``, with a ``baseline`` attr that keeps
``find_spec(NAME)`` on the main search; so the ordinary worker loop runs them, any number
of workers can share them, and a rerun resumes them with the same points.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from hpsearch import store as st
from hpsearch.core.errors import UserError
from hpsearch.core.points import GridError, derive_seed, grid_shape
from hpsearch.core.space import SearchSpace
from hpsearch.core.spec import StageSpec, StudySpec
from hpsearch.engine.loader import seeded_params

if TYPE_CHECKING:
    from hpsearch.store import SearchStore

#: Flat methods, as stage samplers; each baseline's stage is named ``<method>-baseline``.
METHODS = ("grid", "random")
#: Mixed into the search seed so that the random baseline draws its own points rather than
#: replaying the coarse stage's first ones (which share the stage-0 seed).
BASELINE_SEED = 0xBA5E


class CompareError(UserError):
    """The study file cannot be compared as asked (a reserved stage name, a tiny budget)."""


def stage_name(method: str) -> str:
    return f"{method}-baseline"


def baseline_key(search: str, method: str) -> str:
    """How workers and reports address a baseline: its study's name."""
    return st.stage_study_name(search, stage_name(method))


def largest_grid(space: SearchSpace, limit: int) -> int:
    """The largest trial count at or below ``limit`` that makes a full grid over ``space``."""
    for n in range(limit, 0, -1):
        try:
            grid_shape(space, n)
            return n
        except GridError:
            continue
    raise CompareError(
        f"the budget allows {limit} trial(s), too few for a grid over {len(space)} "
        "parameter(s) (each numeric one needs 2 values, each categorical all its choices); "
        "raise the stages' trials or epochs, or search fewer parameters"
    )


def baseline_spec(spec: StudySpec, method: str) -> StudySpec:
    """The one-stage search that spends ``spec``'s epoch budget on ``method``.

    Trials run the final stage's epochs (the length of run the search's answer comes
    from); random gets ``budget // epochs`` trials, grid the largest full grid that fits.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, but got {method!r}")
    taken = [s.name for s in spec.stages if s.name in {stage_name(m) for m in METHODS}]
    if taken:
        raise CompareError(
            f"stage name {taken[0]!r} is reserved for hpsearch compare; rename that stage"
        )
    epochs = spec.stages[-1].epochs
    trials = spec.total_epochs // epochs
    if method == "grid":
        trials = largest_grid(spec.space, trials)
    fixed = dict(spec.fixed)
    # What the objective derives from the seed (the built-in CNN: its data split) stays the
    # search's, so that all three methods are scored on the same validation images.
    for key in seeded_params(spec):
        fixed.setdefault(key, spec.seed)
    return dataclasses.replace(
        spec,
        seed=derive_seed(spec.seed, BASELINE_SEED, METHODS.index(method)),
        fixed=fixed,
        stages=(StageSpec(stage_name(method), trials, epochs, method),),
    )


def register_baselines(store: SearchStore, spec: StudySpec) -> list[str]:
    """Store the search and both baselines (or find them stored: a rerun resumes).

    Returns the keys to run workers on, the search first.
    """
    from hpsearch.engine.stages import register_search

    register_search(store, spec)
    keys = [spec.name]
    for method in METHODS:
        register_search(store, baseline_spec(spec, method), baseline=method)
        keys.append(baseline_key(spec.name, method))
    return keys
