"""The worker loop: find the stage, prepare it once, claim slots, run trials, record them.

``hpsearch launch`` runs this loop (in-process, or in N local processes) and
``hpsearch worker NAME`` runs it on any machine that reaches the database. Workers share
nothing but the database: a stage ends when none of its slots is WAITING or RUNNING, and
only then does anyone move on to the next.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hpsearch import storage as st
from hpsearch.coordination import (
    Claim,
    claim_slot,
    finish_trial,
    requeue_trial,
    stale_trials,
    worker_id,
)
from hpsearch.errors import UserError
from hpsearch.loader import load_objective
from hpsearch.notes import write_stage_note
from hpsearch.reporter import Reporter, TrialLost
from hpsearch.space import CategoricalParam, FloatParam, Param, SearchSpace
from hpsearch.spec import StudySpec
from hpsearch.stages import prepare_stage

if TYPE_CHECKING:
    import optuna
    from optuna.storages import RDBStorage

log = logging.getLogger(__name__)

#: A worker that waits at a stage barrier polls no slower than this.
MAX_POLL_S = 5.0


class SearchNotFound(UserError):
    """No search of that name in the storage."""


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs; built once from CLI options.

    ``grace_period`` is how long a silent worker is presumed alive: after it, its trial is
    failed and its slot re-queued. The heartbeat beats 4 times per grace period.
    """

    storage_url: str
    search: str
    threads: int = 1
    device: str = "auto"
    grace_period: int = 60
    max_trials: int | None = None  # stop after this many trials (tests, smoke runs)

    @property
    def heartbeat_interval(self) -> int:
        return max(1, self.grace_period // 4)


@dataclass
class WorkerStats:
    """What one worker did, for the launch summary and tests."""

    completed: int = 0
    failed: int = 0
    lost: int = 0
    requeued: int = 0
    stages: list[str] = field(default_factory=list)


Event = Callable[[str, dict[str, Any]], None]


#: Set while this process runs an objective: only there does a stop signal raise
#: KeyboardInterrupt. Anywhere else it could land between a commit and what follows it (a
#: claimed slot never returned, say), leaving a trial RUNNING until its heartbeat lapsed.
_IN_OBJECTIVE = threading.Event()


def handle_stop_signals(stop: threading.Event) -> None:
    """Make SIGINT and SIGTERM (Ctrl-C; Slurm and Kubernetes stopping a job) stop the worker
    without losing its trial: ``stop`` is set, an objective in progress is interrupted (its
    slot is re-queued), and a worker between trials stops before claiming the next. The
    first signal counts; repeats are ignored, so they cannot cut the re-queueing short."""
    import signal

    def on_signal(signum: int, frame: object) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop.set()
        if _IN_OBJECTIVE.is_set():
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


def open_worker_storage(config: WorkerConfig) -> RDBStorage:
    return st.open_storage(
        config.storage_url,
        heartbeat_interval=config.heartbeat_interval,
        grace_period=config.grace_period,
    )


def run_worker(
    config: WorkerConfig,
    *,
    stop: threading.Event | None = None,
    on_event: Event | None = None,
) -> WorkerStats:
    """Work on the search until every stage is finished, ``stop`` is set, or
    ``config.max_trials`` trials have run."""
    stop = stop or threading.Event()
    emit = on_event or (lambda kind, info: None)
    storage = open_worker_storage(config)
    spec = st.with_retries(lambda: st.find_spec(storage, config.search), what="read spec")
    if spec is None:
        raise SearchNotFound(
            f"no search named {config.search!r} in {st.mask_url(config.storage_url)}; "
            "launch its study file first (hpsearch launch FILE)"
        )
    objective = load_objective(spec.objective, spec.base_dir, source="stored spec")
    me = worker_id()
    stats = WorkerStats()
    for index, stage in enumerate(spec.stages):
        study = prepare_stage(
            storage, spec, index, owner=me, lease_s=max(10.0, float(config.grace_period))
        )
        stats.stages.append(stage.name)
        emit("stage", {"stage": stage.name, "trials": stage.trials})
        space = SearchSpace.from_dict(study.user_attrs[st.ATTR_SPACE])
        if not _run_stage(
            config, spec, study, storage.engine, space, objective, stop, emit, stats, me
        ):
            break
        write_stage_note(storage, spec, index)  # finished: its note for dashboard reviewers
    return stats


def _run_stage(
    config: WorkerConfig,
    spec: StudySpec,
    study: optuna.Study,
    engine: Any,
    space: SearchSpace,
    objective: Callable[..., float],
    stop: threading.Event,
    emit: Event,
    stats: WorkerStats,
    me: str,
) -> bool:
    """Claim and run slots until the stage is finished. False if the worker must stop."""
    wait, last_recover = 0.2, 0.0
    while not stop.is_set():
        if config.max_trials is not None and stats.completed + stats.failed >= config.max_trials:
            return False
        if time.monotonic() - last_recover > config.heartbeat_interval:
            stats.requeued += recover(study, engine, config.grace_period)
            last_recover = time.monotonic()
        claim = st.with_retries(
            lambda: claim_slot(engine, study._study_id, worker=me), what="claim slot"
        )
        if claim is not None:
            wait = 0.2
            outcome = run_trial(config, spec, study, space, objective, claim, stop)
            setattr(stats, outcome, getattr(stats, outcome) + 1)
            emit("trial", {"stage": study.study_name, "outcome": outcome})
            continue
        running = _count_running(study)
        if running == 0:
            return True
        log.info(
            "%s: no slot left, %d trial(s) still running elsewhere; waiting %.1f s",
            study.study_name,
            running,
            wait,
        )
        stop.wait(wait)
        wait = min(wait * 1.5, MAX_POLL_S)
        last_recover = 0.0  # at the barrier, look for dead workers' trials every time
    return False


def _count_running(study: optuna.Study) -> int:
    from optuna.trial import TrialState

    states = (TrialState.RUNNING, TrialState.WAITING)
    return len(
        st.with_retries(
            lambda: study.get_trials(deepcopy=False, states=states), what="count running"
        )
    )


def recover(study: optuna.Study, engine: Any, grace_period: float) -> int:
    """Fail trials whose worker is gone and re-queue their slots (same params).

    Covers trials whose heartbeat stopped and trials that never got a heartbeat row (which
    Optuna's stale check skips). Not Optuna's ``fail_stale_trials``: on SQLite it lets
    several workers recovering at once each re-queue the same slot (see
    ``coordination.requeue_trial``). Returns how many slots this worker re-queued.
    """
    stale = st.with_retries(
        lambda: stale_trials(engine, study._study_id, grace_period), what="find stale trials"
    )
    requeued = 0
    for trial_id in stale:
        reason = f"worker lost (no heartbeat for {grace_period:g} s)"
        copy = st.with_retries(
            lambda t=trial_id, r=reason: requeue_trial(engine, t, reason=r, max_retry=MAX_RETRY),
            what="re-queue slot",
        )
        requeued += copy is not None
    return requeued


#: A slot whose worker died this many times is failed for good: a trial that kills its
#: worker every time (out of memory, say) must not take the whole search down with it.
MAX_RETRY = 3


def suggest(trial: optuna.Trial, p: Param) -> Any:
    """Ask Optuna for ``p``: an enqueued slot returns its fixed value, TPE samples one."""
    if isinstance(p, CategoricalParam):
        return trial.suggest_categorical(p.name, list(p.choices))
    if isinstance(p, FloatParam):
        return trial.suggest_float(p.name, p.low, p.high, log=p.log)
    return trial.suggest_int(p.name, p.low, p.high, step=p.step, log=p.log)


class _Heartbeat:
    """Beats for one trial until stopped.

    Optuna's own heartbeat thread dies at the first database error, after which a healthy
    trial would be failed as stale during a short outage; this one logs and keeps beating.
    """

    def __init__(self, storage: Any, trial_id: int, interval: float) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(storage, trial_id, interval), daemon=True
        )

    def _run(self, storage: Any, trial_id: int, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                storage.record_heartbeat(trial_id)
            except Exception as exc:  # the database is away; the next beat retries
                log.warning("heartbeat for trial %d failed: %s", trial_id, type(exc).__name__)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _rdb_storage(study: optuna.Study) -> RDBStorage:
    """Optuna's RDBStorage under the study's cache wrapper: writes to a claimed slot go
    there (the cache only knows trials this process listed, and a claimed slot never
    was), and so does the engine that ``coordination`` needs."""
    return getattr(study._storage, "_backend", study._storage)


class _Slot:
    """A claimed trial, written through the database directly.

    Prepared slots already carry their params (stored when the stage was prepared, read
    back by the claim), so running one costs the claim, one write per reported epoch and
    one final write: no sampler round trips and no commit per attr, which was most of
    Optuna's per-trial cost. Only slots without params (TPE's) go through an Optuna
    ``Trial``, whose sampler fills them at run time and sees their results.
    """

    def __init__(self, study: optuna.Study, claim: Claim, space: SearchSpace) -> None:
        import optuna

        self.study, self.id, self.number = study, claim.trial_id, claim.number
        self.attrs = claim.user_attrs
        self.storage = _rdb_storage(study)
        self.trial: optuna.Trial | None = None
        if set(space.names) <= claim.params.keys():
            self.params = {name: claim.params[name] for name in space.names}
        else:
            # Optuna's cache must have listed the trial before a Trial can write to it.
            st.with_retries(lambda: study.get_trials(deepcopy=False), what="list trials")
            self.trial = optuna.trial.Trial(study, claim.trial_id)
            self.params = {
                p.name: st.with_retries(lambda p=p: suggest(self.trial, p), what="suggest")
                for p in space
            }

    def report(self, epoch: int, value: float) -> None:
        st.with_retries(
            lambda: self.storage.set_trial_intermediate_value(self.id, epoch, value),
            what="report",
        )

    def finish(self, value: float | None, attrs: dict[str, Any]) -> bool:
        """Record the value (a failure when None) and attrs; False if the trial was lost."""
        from optuna.trial import TrialState

        if self.trial is None:
            engine = self.storage.engine
            done = st.with_retries(
                lambda: finish_trial(engine, self.id, value, attrs), what="record result"
            )
            if not done:
                log.info("trial %d was re-queued while this worker was away; dropped", self.number)
            return done
        for key, v in attrs.items():  # TPE's slot: tell through Optuna, for its sampler
            st.with_retries(
                lambda k=key, v=v: self.storage.set_trial_user_attr(self.id, k, v), what="set attr"
            )
        state = TrialState.FAIL if value is None else TrialState.COMPLETE
        study, trial = self.study, self.trial
        st.with_retries(lambda: study.tell(trial, value, state=state), what="tell")
        return True


def run_trial(
    config: WorkerConfig,
    spec: StudySpec,
    study: optuna.Study,
    space: SearchSpace,
    objective: Callable[..., float],
    claim: Claim,
    stop: threading.Event | None = None,
) -> str:
    """Run one claimed slot. Returns ``completed``, ``failed`` or ``lost``.

    ``lost``: the trial was finished by someone else while it ran (this worker was paused
    past the grace period and its slot re-queued); the result is dropped quietly.
    KeyboardInterrupt (Ctrl-C, SIGTERM) fails the trial, re-queues its slot and propagates.
    """
    from optuna.exceptions import UpdateFinishedTrialError

    trial_id = claim.trial_id
    with _Heartbeat(study._storage, trial_id, config.heartbeat_interval):
        slot: _Slot | None = None
        try:
            slot = _Slot(study, claim, space)

            def on_value(epoch: int, value: float) -> None:
                try:
                    slot.report(epoch, value)
                except UpdateFinishedTrialError as exc:
                    raise TrialLost(f"trial {slot.number} was finished elsewhere") from exc

            reporter = Reporter(
                seed=int(slot.attrs.get("seed", 0)),
                threads=config.threads,
                on_value=on_value,
                device=config.device,
            )
            merged = builtin_params(spec, {**spec.fixed, **slot.params})
            start = time.perf_counter()
            _IN_OBJECTIVE.set()
            try:
                if stop is not None and stop.is_set():  # the signal came during the claim
                    raise KeyboardInterrupt
                value = objective(merged, int(slot.attrs.get("epochs", 1)), reporter)
            finally:
                _IN_OBJECTIVE.clear()
            attrs = {**reporter.attrs, "wall_seconds": round(time.perf_counter() - start, 4)}
            return _finish(slot, value, attrs)
        except (TrialLost, UpdateFinishedTrialError):
            log.info("trial %d was re-queued while this worker was away; dropped", trial_id)
            return "lost"
        except KeyboardInterrupt:
            _interrupt(study, trial_id)
            raise
        except Exception as exc:
            if st.is_transient(exc) or slot is None:
                raise  # the database is gone past the retry deadline: let heartbeat recover
            reason = f"{type(exc).__name__}: {exc}"
            log.error("trial %d failed: %s\n%s", slot.number, reason, traceback.format_exc())
            try:
                return "failed" if slot.finish(None, {"fail_reason": reason[:500]}) else "lost"
            except UpdateFinishedTrialError:
                return "lost"


def builtin_params(spec: StudySpec, params: dict[str, Any]) -> dict[str, Any]:
    """What the built-in CNN needs from the spec beyond its params: the metric to return,
    the search seed (which fixes the train/validation split for every trial) and a
    relative ``data_dir`` read against the study file's folder when it exists there."""
    if spec.objective != "cnn":
        return params
    out = {**params}
    out.setdefault("split_seed", spec.seed)
    out.setdefault("metric", spec.metric)
    data_dir = out.get("data_dir")
    if isinstance(data_dir, str) and not os.path.isabs(data_dir):
        beside = os.path.join(spec.base_dir, data_dir)
        if os.path.isdir(beside) and not os.path.isdir(data_dir):
            out["data_dir"] = beside
    return out


def _finish(slot: _Slot, value: Any, attrs: dict[str, Any]) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        # Never tell NaN: it has made SQLite studies unreadable in the dashboard.
        reason = f"objective returned {value!r}; return a finite number (report divergence)"
        return "failed" if slot.finish(None, {**attrs, "fail_reason": reason}) else "lost"
    return "completed" if slot.finish(value, attrs) else "lost"


def _interrupt(study: optuna.Study, trial_id: int) -> None:
    """Ctrl-C mid-trial: fail it and re-queue its slot so that a resume runs it again.

    One transaction (``requeue_trial``): a second Ctrl-C or SIGTERM landing here leaves
    the trial either re-queued or still RUNNING (and recovered by heartbeat), never lost.
    """
    engine = _rdb_storage(study).engine
    st.with_retries(
        lambda: requeue_trial(engine, trial_id, reason="interrupted"),
        what="re-queue interrupted trial",
    )
