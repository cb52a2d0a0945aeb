"""The slot a worker runs: its params, the epochs it reports (at those where the stage's
early-stopping rule can decide, asked whether it stops the run) and its one final write
(its heartbeat comes from the worker's heartbeat process, ``liveness.Pulse``)."""

from __future__ import annotations

import logging
from collections.abc import Container
from functools import partial
from typing import TYPE_CHECKING, Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.pruners import SuccessiveHalvingPruner
from optuna.trial import FrozenTrial, TrialState

from hpsearch.core.trial_handle import TrialLost, TrialStopped
from hpsearch.store.sql import budget
from hpsearch.store.sql.claims import (
    PRUNING_STATES,
    finish_trial,
    pruning_trials,
    report_value,
    requeue_trial,
)

if TYPE_CHECKING:
    from optuna.storages import RDBStorage

    from hpsearch.core.space import SearchSpace
    from hpsearch.store.model import Stage, StopEarly
    from hpsearch.store.opening import StoreBase
    from hpsearch.store.sql.claims import Claim

log = logging.getLogger(__name__)


class PruningStudy:
    """What Optuna's pruners read of a study (``direction``, ``get_trials``, ``_storage``
    for the rung attr successive halving writes), with the trials read lean.

    Why not the stage's ``optuna.Study``: a pruner lists the whole study at every reported
    epoch, and Optuna's cached storage reads every unfinished trial again each time, with
    its params and attrs. A stage queues its slots up front and a stopped run appends more,
    so that was every WAITING slot at every epoch: ASHA made a trial 5x dearer, this view
    1.6x (``benchmarks/stop_early_overhead.py``). It serves ``get_trials`` from
    ``sql.claims.pruning_trials`` (trials that have run: a WAITING slot reported nothing),
    without their curves where the pruner compares none (``curves=False``)."""

    def __init__(self, storage: RDBStorage, stage: Stage, *, curves: bool = True) -> None:
        self._storage, self._stage, self._curves = storage, stage, curves

    @property
    def direction(self) -> optuna.study.StudyDirection:
        return self._stage.study.direction

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        wanted = tuple(n for n in PRUNING_STATES if states is None or TrialState[n] in states)
        if not wanted:
            return []
        engine, study_id = self._storage.engine, self._stage.study_id
        return pruning_trials(engine, study_id, wanted, curves=self._curves)


class Slot:
    """A claimed trial: its params, and the writes a worker makes while it runs.

    Prepared slots already carry their params (stored when the stage was prepared, read
    back by the claim), so running one costs the claim, one write per reported epoch and
    one final write: no sampler round trips and no commit per attr, which was most of
    Optuna's per-trial cost. Only slots without params (TPE's) go through an Optuna
    ``Trial``, whose sampler fills them at run time and sees their results.
    """

    def __init__(
        self,
        store: StoreBase,
        stage: Stage,
        claim: Claim,
        space: SearchSpace,
        stop_early: StopEarly | None = None,
    ) -> None:
        self._store, self._stage = store, stage
        self.trial_id, self.number = claim.trial_id, claim.number
        self.attrs = claim.user_attrs
        self._trial: optuna.Trial | None = None
        self._stop_early = stop_early
        self.last: tuple[int, float] | None = None  # the last epoch reported, and its value
        self.stopped_at: int | None = None  # the epoch after which early stopping stopped it
        self._asked = 0  # the highest epoch reported: the rungs up to it were asked about
        if set(space.names) <= claim.params.keys():
            self.params = {name: claim.params[name] for name in space.names}
            return
        study = stage.study
        # Optuna's cache must have listed the trial before a Trial can write to it.
        store._retry(lambda: study.get_trials(deepcopy=False), "list trials")
        trial = self._trial = optuna.trial.Trial(study, claim.trial_id)
        self.params = {p.name: store._retry(partial(p.suggest, trial), "suggest") for p in space}

    def report(self, epoch: int, value: float) -> None:
        """Record one epoch's value; TrialLost if the trial was finished elsewhere, and
        TrialStopped if the stage's early-stopping rule stops it here (then again on any
        later call: an objective that carried on is not recorded further)."""
        if self.stopped_at is not None:
            raise TrialStopped(f"trial {self.number} was stopped after epoch {self.stopped_at}")
        if not self._store._sql("report", report_value, self.trial_id, epoch, value):
            raise TrialLost(f"trial {self.number} was finished elsewhere")
        self.last = (epoch, value)
        try:
            losing = self._losing(epoch)
        except UpdateFinishedTrialError as exc:  # its rung attr, on a trial finished meanwhile
            raise TrialLost(f"trial {self.number} was finished elsewhere") from exc
        if losing:
            self.stopped_at = epoch
            raise TrialStopped(f"trial {self.number} stopped early after epoch {epoch}")

    def _losing(self, epoch: int) -> bool:
        """The stage's pruner, asked as Optuna asks it: ``prune(study, frozen_trial)``, on
        a :class:`PruningStudy` of the stage and this trial read as lean from the database
        (its intermediate values, and the rung attrs successive halving keeps on every
        trial). Never at the last epoch: a run that got there is finished, not stopped; with
        ``decides_at`` (successive halving's rungs), only at the first report that reaches
        or passes a rung not reached before: at any other epoch the pruner decides nothing
        and reads nothing, so the database is not asked either."""
        stop = self._stop_early
        if stop is None or epoch >= stop.epochs:
            return False
        asked, self._asked = self._asked, max(self._asked, epoch)
        if stop.decides_at is not None and not any(asked < d <= epoch for d in stop.decides_at):
            return False
        rdb = self._store._rdb
        # Successive halving compares the rung values alone (its min_resource is set, so it
        # never estimates one from the curves); the median rule compares curves.
        curves = not isinstance(stop.pruner, SuccessiveHalvingPruner)
        study = PruningStudy(rdb, self._stage, curves=curves)
        study_id = self._stage.study_id

        def ask() -> bool:
            # in any state: one finished elsewhere meanwhile raises UpdateFinishedTrialError
            # when successive halving records its rung (TrialLost, as for a report)
            any_state = tuple(state.name for state in TrialState)
            [me] = pruning_trials(rdb.engine, study_id, any_state, trial_id=self.trial_id)
            return bool(stop.pruner.prune(study, me))  # type: ignore[arg-type]

        return self._store._retry(ask, "stop early?")

    def finish_stopped(self, attrs: dict[str, Any]) -> bool:
        """Record the trial as stopped early (PRUNED with its last reported value, the
        epochs it ran in ``epochs_run``) and append the slots the epochs it saved buy, in
        one transaction (``sql.budget.finish_stopped``). False if the trial was lost."""
        assert self._stop_early is not None and self.stopped_at is not None
        value = self.last[1] if self.last is not None else None
        attrs = {**attrs, budget.EPOCHS_RUN: self.stopped_at}
        added = self._store._sql(
            "record stopped trial",
            budget.finish_stopped,
            self.trial_id,
            value,
            attrs,
            self._stop_early,
        )
        if added:
            log.info("trial %d stopped early: %d slot(s) appended", self.number, added)
        return added is not None

    def finish(self, value: float | None, attrs: dict[str, Any]) -> bool:
        """Record the value (a failure when None) and attrs; False if the trial was lost
        (failed and re-queued while this worker was away: nothing is written)."""
        store = self._store
        if self._trial is None:
            return store._sql("record result", finish_trial, self.trial_id, value, attrs)
        rdb, study, trial = store._rdb, self._stage.study, self._trial
        state = TrialState.FAIL if value is None else TrialState.COMPLETE
        try:
            for key, v in attrs.items():  # TPE's slot: tell through Optuna, for its sampler
                store._retry(partial(rdb.set_trial_user_attr, self.trial_id, key, v), "set attr")
            store._retry(lambda: study.tell(trial, value, state=state), "tell")
        except UpdateFinishedTrialError:
            return False
        return True

    def interrupt(self) -> None:
        """Ctrl-C mid-trial: fail it and re-queue its slot so that a resume runs it again.

        One transaction (``sql.claims.requeue_trial``): a second Ctrl-C or SIGTERM landing
        here leaves the trial either re-queued or still RUNNING (and recovered by
        heartbeat), never lost.
        """
        self._store._sql(
            "re-queue interrupted trial", requeue_trial, self.trial_id, reason="interrupted"
        )
