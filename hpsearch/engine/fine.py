"""The fine stage's sampler: Optuna's TPE seeded with every trial of the earlier stages.

A stage after the first whose sampler is ``tpe`` fills its slots at run time, like any TPE
stage, but the model sees the trials of all the stages before it too, read from storage
(their stage studies) once per worker: finished runs as results, runs stopped early (and
runs of shorter stages) for ranking only, as ``core.prior.as_evidence`` says. Its slots
may take any point of the hull of the previous space and the box narrowing cut
(``core.prior.hull``); the default model samples inside a trust region that starts as the
box and grows past a side the best result presses (``core.prior.trust_region``), TPE run
on the region's own distributions over the trials inside it. (The other models of
``core.prior.MODELS`` are kept to rerun the measurements of docs/plans.md.)

The sampler hands Optuna's a view of the stage study (``_Seeded``) whose trial list is the
earlier stages' trials, renumbered below 0 and put on this stage's distributions, then the
stage's own. Everything read comes from storage and is ordered by stage and trial number,
so one worker samples the same points on every run (several: as TPE, by timing).

Workers propose while others' runs are pending: each worker has its own sampler, seeded
alike, and those of a stage's start read the same trials. Two things keep them from
proposing one point: TPE's constant liar (Optuna's default: a RUNNING trial whose point is
stored counts as a bad result), and a random stream per slot (``derive_seed(seed,
number)``), so that proposals made at the same moment, before either point is stored,
draw different candidates (they did not: four workers got one point, docs/parallel.md).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.samplers._lazy_random_state import LazyRandomState
from optuna.trial import FrozenTrial, TrialState

from hpsearch.core import prior
from hpsearch.core.points import derive_seed
from hpsearch.core.records import TrialRecord
from hpsearch.core.space import SearchSpace

if TYPE_CHECKING:
    from optuna.study import Study


@dataclass(frozen=True)
class Evidence:
    """What the fine stage's sampler reads once: the stage's space and box (None: no
    prior), its runs' epochs, and the earlier stages' trials in stage and number order."""

    space: SearchSpace
    box: SearchSpace | None
    epochs: int
    earlier: tuple[TrialRecord, ...]


def frozen(evidence: Evidence) -> list[FrozenTrial]:
    """The earlier trials as Optuna trials of this stage: on its distributions, numbered
    -n .. -1 (below every trial of the stage: none collides with the trial being sampled),
    and those with a value outside the stage's space left out."""
    dists: dict[str, BaseDistribution] = {p.name: p.to_distribution() for p in evidence.space}
    usable = []
    for e in evidence.earlier:
        counted = prior.as_evidence(e, evidence.epochs)
        if counted is None or not _fits(e.params, dists):
            continue
        usable.append((counted, e))
    out = []
    for i, ((state, value, curve), e) in enumerate(usable):
        complete = state == "COMPLETE"
        out.append(
            FrozenTrial(
                number=i - len(usable),
                state=TrialState.COMPLETE if complete else TrialState.PRUNED,
                value=value if complete else None,
                datetime_start=None,
                datetime_complete=None,
                params={n: e.params[n] for n in dists},
                distributions=dists,
                user_attrs={},
                system_attrs={},
                intermediate_values={int(k): float(v) for k, v in curve.items()},
                trial_id=-1 - i,
            )
        )
    return out


def _fits(params: dict[str, Any], dists: dict[str, BaseDistribution]) -> bool:
    for name, d in dists.items():
        if name not in params:
            return False
        v = params[name]
        if isinstance(d, CategoricalDistribution):
            if repr(v) not in {repr(c) for c in d.choices}:
                return False
        elif not d._contains(d.to_internal_repr(v)):
            return False
    return True


class _Seeded:
    """A stage study as the inner sampler sees it: the earlier trials listed first, then
    the stage's own, read once per slot filled (TPE asks for them twice, and each read
    of a stage with many queued slots costs a query of every unfinished one)."""

    def __init__(self, study: Study, earlier: list[FrozenTrial]) -> None:
        self._study = study
        self._earlier = earlier
        self._mine: list[FrozenTrial] | None = None

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Sequence[TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:
        if self._mine is None:
            self._mine = self._study._get_trials(deepcopy=False, use_cache=use_cache)
        mine = [t for t in self._mine if states is None or t.state in states]
        earlier = [t for t in self._earlier if states is None or t.state in states]
        out = earlier + mine
        return copy.deepcopy(out) if deepcopy else out

    def get_trials(
        self, deepcopy: bool = True, states: Sequence[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return self._get_trials(deepcopy=deepcopy, states=states)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


class _Listed(_Seeded):
    """A study whose trial list is given (the trials inside a trust region)."""

    def __init__(self, study: Any, trials: list[FrozenTrial]) -> None:
        super().__init__(study, [])
        self._mine = trials


def _on(t: FrozenTrial, dists: dict[str, BaseDistribution]) -> FrozenTrial:
    """``t`` on other distributions (that contain its params)."""
    return FrozenTrial(
        number=t.number,
        state=t.state,
        value=t.value if t.state == TrialState.COMPLETE else None,
        datetime_start=t.datetime_start,
        datetime_complete=t.datetime_complete,
        params={n: t.params[n] for n in dists},
        distributions=dists,
        user_attrs={},
        system_attrs={},
        intermediate_values=t.intermediate_values,
        trial_id=t._trial_id,
    )


class _BoxTPE(TPESampler):
    """TPE whose acquisition carries the box as a prior: a candidate outside it needs a
    good-to-bad density ratio ``1 / OUTSIDE_WEIGHT`` times that of one inside."""

    def __init__(self, *, box: SearchSpace | None, space: SearchSpace, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._box = box
        self._dists = {p.name: p.to_distribution() for p in space}

    def _compute_acquisition_func(self, samples: dict[str, np.ndarray], *args: Any) -> Any:
        acq = super()._compute_acquisition_func(samples, *args)
        if self._box is None:
            return acq
        penalty = math.log(prior.OUTSIDE_WEIGHT)
        for name, internal in samples.items():
            dist = self._dists.get(name)
            if dist is None:
                continue
            values = [dist.to_external_repr(x) for x in np.asarray(internal).tolist()]
            acq = acq + penalty * np.asarray(prior.outside(self._box, name, values), float)
        return acq


def _reseed(sampler: BaseSampler, seed: int) -> None:
    """Seed every random state of ``sampler`` and of the samplers it holds (TPE's start-up
    sampler, GP's independent one): the draws that follow depend on ``seed`` alone."""
    for value in vars(sampler).values():
        if isinstance(value, LazyRandomState):
            value.rng.seed(seed)
        elif isinstance(value, BaseSampler):
            _reseed(value, seed)


class SlotSeeded(BaseSampler):
    """``inner`` (a stage's own TPE) drawing from a random stream per slot, as
    :class:`FineSampler` does: every worker's TPE is seeded alike, so its random start-up
    points were the same on every worker (four workers ran four points twice each)."""

    def __init__(self, inner: BaseSampler, *, seed: int) -> None:
        self._inner, self._seed = inner, seed
        self._slot: int | None = None  # the trial whose stream ``inner`` draws from

    def _for(self, trial: FrozenTrial) -> BaseSampler:
        if trial.number != self._slot:
            _reseed(self._inner, derive_seed(self._seed, trial.number))
            self._slot = trial.number
        return self._inner

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: Any
    ) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._inner.before_trial(study, trial)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()


class FineSampler(BaseSampler):
    """The fine stage's sampler: ``model`` (``core.prior.MODELS``) seeded with the earlier
    stages' trials, which ``load`` reads from storage the first time a slot is filled."""

    def __init__(
        self,
        load: Callable[[], Evidence],
        *,
        seed: int,
        startup: int,
        model: str | None = None,
    ) -> None:
        self._load = load
        self._seed = seed
        self._startup = startup
        self._model = model or prior.MODEL
        self._inner: BaseSampler | None = None
        self._fallback: BaseSampler | None = None
        self._earlier: list[FrozenTrial] = []
        self._space: dict[str, BaseDistribution] = {}
        self._view: tuple[int | None, _Seeded] | None = None
        self._hull: SearchSpace | None = None
        self._box: SearchSpace | None = None

    def _ready(self) -> BaseSampler:
        if self._inner is None:
            evidence = self._load()
            self._earlier = frozen(evidence)
            self._space = {p.name: p.to_distribution() for p in evidence.space}
            self._hull, self._box = evidence.space, evidence.box or evidence.space
            box = evidence.box if self._model.endswith("-prior") else None
            tpe = _BoxTPE(box=box, space=evidence.space, seed=self._seed,
                          n_startup_trials=self._startup)  # fmt: skip
            if self._model == "gp-prior":
                self._fallback = tpe
                self._inner = optuna.samplers.GPSampler(
                    seed=self._seed,
                    n_startup_trials=self._startup,
                    independent_sampler=tpe,
                    warn_independent_sampling=False,
                )
            else:
                self._inner = tpe
        return self._inner

    def _pick(self, study: Study, trial: FrozenTrial | None = None) -> tuple[BaseSampler, _Seeded]:
        """The model for this slot and the study as it sees it: one view per slot filled
        (``trial``), so the stage's trials are read once for all its parameters."""
        inner = self._ready()
        key = None if trial is None else trial.number
        if key is None or self._view is None or self._view[0] != key:
            self._view = (key, _Seeded(study, self._earlier))
            if key is not None:
                _reseed(inner, derive_seed(self._seed, key))
        view = self._view[1]
        if self._fallback is not None:
            done = len(view._get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
            if done > prior.GP_MAX_TRIALS:
                return self._fallback, view
        return inner, view

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        # The stage's own space, every parameter at once (multivariate, as Optuna's TPE is
        # for one objective): its trials and the earlier ones all share its distributions.
        self._pick(study)
        return {n: d for n, d in sorted(self._space.items()) if not d.single()}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        inner, view = self._pick(study, trial)
        if prior.trusts(self._model):
            return self._sample_trusted(inner, view, trial)
        return inner.sample_relative(view, trial, search_space)  # type: ignore[arg-type]

    def _sample_trusted(self, inner: BaseSampler, view: _Seeded, trial: FrozenTrial) -> dict:
        """TPE inside the trust region (``core.prior.trust_region``) of the best result so
        far, on the region's own distributions (TPE's kernels scale with the range: in the
        whole space they are too wide to home in), from the trials that lie inside it."""
        assert self._box is not None and self._hull is not None
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        trials = view._get_trials(deepcopy=False, states=states)
        done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        sign = 1.0 if view.direction == optuna.study.StudyDirection.MINIMIZE else -1.0
        best = min(done, key=lambda t: (sign * t.value, t.number), default=None)  # type: ignore[operator]
        stalled = 0
        if best is not None and prior.shrinks(self._model):
            # the stage's own results (numbered from 0) since the best, in number order
            stalled = sum(1 for t in done if t.number > max(best.number, -1))
        region = prior.trust_region(self._box, self._hull, best.params if best else None, stalled)
        dists: dict[str, BaseDistribution] = {p.name: p.to_distribution() for p in region}
        fixed: dict[str, Any] = {}
        for n, d in dists.items():
            if d.single():
                fixed[n] = region[n].choices[0] if not region[n].numeric else region[n].low  # type: ignore[union-attr]
        free = {n: d for n, d in sorted(dists.items()) if not d.single()}
        if prior.results_only(self._model):
            trials = [t for t in trials if t.state != TrialState.PRUNED]
        inside = [_on(t, dists) for t in trials if t.params and _fits(t.params, dists)]
        picked = inner.sample_relative(_Listed(view, inside), trial, free)  # type: ignore[arg-type]
        if not picked and free:  # too few trials inside to model: a uniform point in it
            rng = np.random.default_rng([self._seed, trial.number & 0xFFFFFFFF])
            point = region.from_unit(rng.random(len(region)).tolist())
            picked = {n: point[n] for n in free}
        return {**fixed, **picked}

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: Any
    ) -> Any:
        inner, view = self._pick(study, trial)
        return inner.sample_independent(view, trial, param_name, param_distribution)  # type: ignore[arg-type]

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._pick(study)[0].before_trial(study, trial)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._pick(study)[0].after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._ready().reseed_rng()
