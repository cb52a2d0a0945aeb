"""The worker loop: find the stage, prepare it once, claim slots, run trials, record them.

``hpsearch launch`` runs this loop (in-process, or in N local processes) and
``hpsearch worker NAME`` runs it on any machine that reaches the database. Workers share
nothing but the database: a stage ends when none of its slots is WAITING or RUNNING, and
only then does anyone move on to the next.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from hpsearch import store as st
from hpsearch.core import failures
from hpsearch.core.errors import UserError
from hpsearch.core.space import SearchSpace
from hpsearch.core.spec import StudySpec
from hpsearch.core.trial_handle import Reporter, TrialLost, TrialStopped
from hpsearch.engine import failfast
from hpsearch.engine.loader import load_objective, prepare_params
from hpsearch.engine.stages import open_stage, prepare_stage, stop_early, warm_up
from hpsearch.store import SearchStore, Slot, Stage, policy, worker_id

if TYPE_CHECKING:
    from hpsearch.store.liveness import Pulse

log = logging.getLogger(__name__)

#: A worker that waits at a stage barrier polls no slower than this: three light queries
#: (stop mark, claim, open count). Every waiting worker notices the stage's end up to this
#: late, once per stage end (1 s cost 1.5-1.9% of the 4-worker span, docs/parallel.md).
MAX_POLL_S = 0.25
#: ... and looks for dead workers' trials there (a heavier query) no more often than this.
BARRIER_RECOVER_S = 1.0

#: Set to a folder, each worker writes there, as it stops, ``<pid>.json``: when its
#: process started and what it did when (prepare, claim, trial, wait, ...), in Unix time.
#: ``benchmarks/wall_clock.py`` reads them for its idle-time breakdown. Unset: nothing is
#: kept (a few tuples per trial when set).
ENV_TIMINGS = "HPSEARCH_TIMINGS"


class SearchNotFound(UserError):
    """No search of that name in the storage."""


class TrialTimedOut(BaseException):  # noqa: N818 (a stop, as KeyboardInterrupt is)
    """Raised inside an objective whose ``trial_timeout`` is up. A BaseException, so that
    an objective's ``except Exception`` does not swallow it."""


#: How long a timed-out objective gets to stop once interrupted, at most: then its worker
#: process is ended (a CLI worker restarts itself in place and goes on with the search).
TIMEOUT_GRACE_S = 10.0


def timeout_grace(seconds: float) -> float:
    """The grace of a ``seconds`` limit: 10 s, or the limit itself when shorter."""
    return min(TIMEOUT_GRACE_S, seconds)


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
    max_failures: int | None = (
        None  # fail fast (hpsearch.engine.failfast); None: the stored spec's
    )

    @property
    def heartbeat_interval(self) -> int:
        return max(1, self.grace_period // 4)


@dataclass
class WorkerStats:
    """What one worker did, for the launch summary and tests."""

    completed: int = 0
    failed: int = 0
    lost: int = 0
    stopped_early: int = 0  # runs the stage's early-stopping rule stopped
    requeued: int = 0
    stages: list[str] = field(default_factory=list)
    stopped: tuple[str, failures.Stop] | None = None  # (stage, why): failures stopped it

    @property
    def ran(self) -> int:
        return self.completed + self.failed + self.stopped_early

    def count(self, outcome: str) -> None:
        if outcome == "completed":
            self.completed += 1
        elif outcome == "failed":
            self.failed += 1
        elif outcome == "stopped":
            self.stopped_early += 1
        else:
            self.lost += 1


Event = Callable[[str, dict[str, Any]], None]


class Timeline:
    """Where one worker's time goes, when ``$HPSEARCH_TIMINGS`` names a folder: intervals
    ``(kind, stage, start, end)`` in Unix time, written there as JSON when it stops."""

    def __init__(self) -> None:
        self.folder = os.environ.get(ENV_TIMINGS) or None
        self.entered = time.time()
        self.events: list[tuple[str, str, float, float]] = []

    @contextlib.contextmanager
    def span(self, kind: str, stage: str = "") -> Any:
        start = time.time()
        try:
            yield
        finally:
            if self.folder is not None:
                self.events.append((kind, stage, start, time.time()))

    def write(self) -> None:
        if self.folder is None:
            return
        import json

        record = {
            "pid": os.getpid(),
            "process_started": _process_started(),
            "entered": self.entered,
            "left": time.time(),
            "events": self.events,
        }
        path = Path(self.folder) / f"{os.getpid()}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(path)


def _process_started() -> float | None:
    """When this process started (Unix time, to within a second: the kernel's boot time is
    whole seconds; Linux only, else None)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


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


def run_worker(
    config: WorkerConfig,
    *,
    stop: threading.Event | None = None,
    on_event: Event | None = None,
    objective: Callable[..., Any] | None = None,
) -> WorkerStats:
    """Work on the search until every stage is finished, ``stop`` is set, or
    ``config.max_trials`` trials have run. ``objective``: the function itself, when the
    caller has it already (the Python API); else the stored spec's is imported.

    ``on_event(kind, info)`` hears ``stage`` (a stage begins), ``trial`` (one ran) and
    ``stage_done`` (a stage has no slot left: ``info`` holds the store, the spec, the
    stage's index and this worker's id, which is what ``report.note.on_worker_event``
    writes the stage's dashboard note from)."""
    timeline = Timeline()
    try:
        return _run_worker(config, stop, on_event, objective, timeline)
    finally:
        timeline.write()


def _run_worker(
    config: WorkerConfig,
    stop: threading.Event | None,
    on_event: Event | None,
    objective: Callable[..., Any] | None,
    timeline: Timeline,
) -> WorkerStats:
    stop = stop or threading.Event()
    emit = on_event or (lambda kind, info: None)
    store = SearchStore.open(config.storage_url)
    spec = store.find_spec(config.search)
    if spec is None:
        raise SearchNotFound(
            f"no search named {config.search!r} in {store.masked_url}; "
            "launch its study file first (hpsearch launch FILE)"
        )
    if objective is None:
        objective = load_objective(spec.objective, spec.base_dir, source="stored spec")
    max_failures = spec.max_failures if config.max_failures is None else config.max_failures
    warm_up(spec)
    run = _Run(
        config,
        store,
        spec,
        objective,
        stop,
        emit,
        WorkerStats(),
        worker_id(),
        max_failures,
        timeline=timeline,
    )
    # Attached for the whole run (preparing, between trials, at a stage barrier), so that
    # ``hpsearch delete`` refuses the search while this worker is on it. Its heartbeat
    # process beats the worker and its trials from outside this interpreter.
    attached = store.attached(
        config.search, run.me, config.heartbeat_interval, config.grace_period
    )
    with attached as pulse:
        if pulse is None:
            raise SearchNotFound(f"search {config.search!r} was deleted from {store.masked_url}")
        run.pulse = pulse
        index = 0
        # A relaunch may edit the search while this worker runs (more trials, a stage
        # appended, max_failures): the stored spec is read again at every stage, a stage that
        # an edit re-opened is finished before the next one is prepared, and the worker goes
        # back to one re-opened behind it before it stops.
        while True:
            spec = run.spec = store.current_spec(spec)
            if config.max_failures is None:
                run.max_failures = spec.max_failures
            if index >= len(spec.stages):
                reopened = _reopened(store, spec)
                if reopened is None:
                    break
                index = reopened
            with timeline.span("prepare", spec.stages[index].name):
                stage = prepare_stage(
                    store,
                    spec,
                    index,
                    owner=run.me,
                    lease_s=max(10.0, float(config.grace_period)),
                    stop=stop,
                )
            if stage is None:
                if stop.is_set():  # stopped while preparing it: left unprepared
                    break
                index = max(0, index - 1)
                continue
            spec_stage = spec.stages[index]
            run.timeout = spec.timeout_of(index)
            run.stats.stages.append(spec_stage.name)
            emit("stage", {"stage": spec_stage.name, "trials": spec_stage.trials})
            if not run.stage(stage, spec_stage.name):
                break
            # Finished: whoever runs the worker acts on it (``api.run`` writes its note).
            with timeline.span("note", spec_stage.name):
                emit(
                    "stage_done",
                    {
                        "stage": spec_stage.name,
                        "index": index,
                        "spec": spec,
                        "store": store,
                        "worker": run.me,
                    },
                )
            index += 1
        return run.stats


def _reopened(store: SearchStore, spec: StudySpec) -> int | None:
    """The first stage with slots open (an edit gave it more trials after this worker had
    finished it), or None."""
    return next(
        (i for i in range(len(spec.stages)) if store.open_count(open_stage(store, spec, i))),
        None,
    )


@dataclass
class _Run:
    """One worker's run of a search: what every stage and trial of it needs."""

    config: WorkerConfig
    store: SearchStore
    spec: StudySpec
    objective: Callable[..., float]
    stop: threading.Event
    emit: Event
    stats: WorkerStats
    me: str
    max_failures: int
    timeout: float | None = None  # the running stage's trial_timeout
    timeline: Timeline = field(default_factory=Timeline)
    pulse: Pulse | None = None  # the heartbeat process, once attached

    def stage(self, stage: Stage, name: str) -> bool:
        """Claim and run slots until the stage is finished. False if the worker must stop:
        asked to, or the stage was stopped on failures (then its failed trials, this
        worker's last one included, are re-queued first; see ``hpsearch.engine.failfast``)."""
        config, store = self.config, self.store
        attrs = store.stage_attrs(stage)
        space = SearchSpace.from_dict(attrs[st.ATTR_SPACE])
        early = stop_early(self.spec, attrs)
        wait, last_recover, waiting = 0.2, 0.0, False
        while not self.stop.is_set():
            if config.max_trials is not None and self.stats.ran >= config.max_trials:
                return False
            with self.timeline.span("check", name):
                mark = store.stopped(stage)
            if mark is not None:
                store.requeue_failed(stage)
                self.stats.stopped = (name, failures.Stop.from_dict(mark))
                return False
            every = BARRIER_RECOVER_S if waiting else config.heartbeat_interval
            if time.monotonic() - last_recover > every:
                with self.timeline.span("check", name):
                    self.stats.requeued += store.recover(
                        stage, config.grace_period, max_retry=MAX_RETRY
                    )
                last_recover = time.monotonic()
            with self.timeline.span("claim", name):
                slot = store.claim(stage, space, worker=self.me, stop_early=early)
            if slot is not None:
                wait, waiting = 0.2, False
                with self.timeline.span("trial", name):
                    outcome = self.trial(slot)
                self.stats.count(outcome)
                with self.timeline.span("event", name):
                    self.emit("trial", {"stage": stage.name, "outcome": outcome})
                if outcome == "failed":
                    failfast.check(store, stage, self.max_failures, by=self.me)
                continue
            with self.timeline.span("check", name):
                running = store.open_count(stage)
            if running == 0:
                # budget left unspent by any path buys its runs before the stage ends
                with self.timeline.span("check", name):
                    topped = early is not None and store.top_up(stage, early)
                if not topped:
                    return True
                continue
            log.info(
                "%s: no slot left, %d trial(s) still running elsewhere; waiting %.1f s",
                stage.name,
                running,
                wait,
            )
            with self.timeline.span("wait", name):
                self.stop.wait(wait)
            wait = min(wait * 1.5, MAX_POLL_S)
            waiting = True  # at the barrier: look for dead workers' trials every second
        return False

    def trial(self, slot: Slot) -> str:
        """Run one claimed slot. Returns ``completed``, ``failed``, ``stopped`` (by the
        stage's early-stopping rule) or ``lost``.

        ``lost``: the trial was finished by someone else while it ran (this worker was
        paused past the grace period and its slot re-queued); the result is dropped.
        KeyboardInterrupt (Ctrl-C, SIGTERM) fails the trial, re-queues its slot and
        propagates. A database error past the retry deadline propagates too: the slot
        stays RUNNING and heartbeat recovery re-queues it.
        """
        timeout = self.timeout
        assert self.pulse is not None
        # The heartbeat process ends the trial (and this process) a grace period after
        # _hard_limit would have: only if this interpreter is held and that never ran.
        limit_at, ended = None, {}
        if timeout:
            limit_at = time.time() + timeout + timeout_grace(timeout)
            ended = _timed_out(timeout, ended=True)
        beating = self.pulse.beating(slot.trial_id, limit_at=limit_at, timed_out=ended)
        with beating, _hard_limit(slot, timeout):
            try:
                value, attrs = self._call(slot)
            except TrialTimedOut:
                return _record(slot, None, _timed_out(timeout))
            except TrialLost:
                log.info("trial %d was re-queued while this worker was away; dropped", slot.number)
                return "lost"
            except TrialStopped as stop:
                return _record_stopped(slot, stop.attrs)
            except KeyboardInterrupt:
                slot.interrupt()
                raise
            except Exception as exc:
                if policy.error_kind(exc) is not None:
                    raise  # a database error the policy did not cure: not the objective's
                return _record(slot, None, _failure(exc))
            if slot.stopped_at is not None:  # the objective caught TrialStopped and went on
                return _record_stopped(slot, attrs)
            return _record(slot, *checked(value, attrs))

    def _call(self, slot: Slot) -> tuple[Any, dict[str, Any]]:
        config = self.config
        timed: SlotLike = slot if self.timeline.folder is None else _TimedSlot(slot, self.timeline)
        with self.timeline.span("objective"):
            return call_objective(
                self.spec,
                self.objective,
                timed,
                threads=config.threads,
                device=config.device,
                stop=self.stop,
                timeout=self.timeout,
            )


class SlotLike(Protocol):
    """What :func:`call_objective` reads of a slot: a claimed one, or a stored trial that
    ``hpsearch best --retrain`` replays."""

    number: int
    params: dict[str, Any]
    attrs: dict[str, Any]

    def report(self, epoch: int, value: float) -> None: ...


class _TimedSlot:
    """A claimed slot whose reports (a write, and the pruner's read) are timed."""

    def __init__(self, slot: Slot, timeline: Timeline) -> None:
        self.slot, self.timeline = slot, timeline
        self.number, self.params, self.attrs = slot.number, slot.params, slot.attrs

    def report(self, epoch: int, value: float) -> None:
        with self.timeline.span("report"):
            self.slot.report(epoch, value)


def call_objective(
    spec: StudySpec,
    objective: Callable[..., Any],
    slot: SlotLike,
    *,
    threads: int,
    device: str,
    stop: threading.Event | None = None,
    timeout: float | None = None,
) -> tuple[Any, dict[str, Any]]:
    """The objective on the slot's params, as every trial runs it: ``[fixed]`` merged
    with the searched params and what a built-in takes from the spec
    (``loader.prepare_params``), a Reporter with the slot's seed and its epochs. Returns what the objective returned and the trial's attrs; one path, so
    that a retrained winner cannot drift from the trial it reproduces."""
    reporter = Reporter(
        seed=int(slot.attrs.get("seed", 0)), threads=threads, on_value=slot.report, device=device
    )
    merged = prepare_params(spec, {**spec.fixed, **slot.params})
    start = time.perf_counter()
    _IN_OBJECTIVE.set()
    try:
        if stop is not None and stop.is_set():  # the signal came during the claim
            raise KeyboardInterrupt
        with _soft_limit(timeout):
            value = objective(merged, int(slot.attrs.get("epochs", 1)), reporter)
    except TrialStopped as stopped:
        stopped.attrs = {**reporter.attrs, "wall_seconds": round(time.perf_counter() - start, 4)}
        raise
    finally:
        _IN_OBJECTIVE.clear()
    return value, {**reporter.attrs, "wall_seconds": round(time.perf_counter() - start, 4)}


@contextlib.contextmanager
def _soft_limit(seconds: float | None) -> Any:
    """Raise TrialTimedOut in the objective after ``seconds`` (SIGALRM; the main thread
    only, where Python runs signal handlers). A C call that holds the interpreter is not
    interrupted: :func:`_hard_limit` ends those."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        if _IN_OBJECTIVE.is_set():
            raise TrialTimedOut(f"timed out after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _timed_out(seconds: float | None, *, ended: bool = False) -> dict[str, Any]:
    reason = f"timed out after {seconds:g} s (trial_timeout)"
    if ended:
        reason += (
            f"; it did not stop within {timeout_grace(seconds or 0):g} s of being "
            "interrupted, so its worker process was ended"
        )
    return {"fail_reason": reason, "wall_seconds": seconds}


@contextlib.contextmanager
def _hard_limit(slot: Slot, seconds: float | None) -> Any:
    """If the trial still runs ``seconds`` plus the grace after it started (its objective
    ignored the interruption), record it failed ("timed out") and end this process: a CLI
    worker (``hpsearch worker``, ``hpsearch launch``) execs itself again, the same command
    in the same process, and goes on with the search; any other process is killed."""
    if not seconds:
        yield
        return
    done = threading.Event()

    def watch() -> None:
        if done.wait(seconds + timeout_grace(seconds)):
            return
        log.error(
            "trial %d ignored its trial_timeout of %g s; ending this worker process",
            slot.number,
            seconds,
        )
        try:
            slot.finish(None, _timed_out(seconds, ended=True))
        except Exception as exc:  # recovery by heartbeat re-queues it instead
            log.error("could not record trial %d as timed out: %s", slot.number, exc)
        _end_this_process()

    thread = threading.Thread(target=watch, name="hpsearch-trial-timeout", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()


def _end_this_process() -> None:
    """Exec the same CLI command again (same pid: a launcher watching it sees no death),
    else SIGKILL."""
    logging.shutdown()
    argv = list(getattr(sys, "orig_argv", []))
    cli = len(argv) > 2 and argv[1:3] == ["-m", "hpsearch.cli"]
    cli = cli or (len(argv) > 1 and os.path.basename(argv[1]) == "hpsearch")
    if cli:
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, *argv[1:]])
    os.kill(os.getpid(), signal.SIGKILL)


#: A slot whose worker died this many times is failed for good: a trial that kills its
#: worker every time (out of memory, say) must not take the whole search down with it.
MAX_RETRY = 3


def checked(value: Any, attrs: dict[str, Any]) -> tuple[float | None, dict[str, Any]]:
    """The value to record, or None (a failure, with the reason in the attrs) when the
    objective returned something that is not a finite number. NaN is never stored: it has
    made SQLite studies unreadable in the dashboard."""
    attrs = json_safe_attrs(attrs)
    try:
        number = _as_number(value)
    except OverflowError:
        digits = len(str(abs(int(value))))
        reason = (
            f"objective returned a value no float holds (an integer of {digits} digits); "
            "return the metric as a finite float"
        )
        return None, {**attrs, "fail_reason": reason}
    if number is None:
        reason = (
            f"objective returned {value!r} ({type(value).__name__}); "
            "return the metric as a finite number"
        )
        return None, {**attrs, "fail_reason": reason[:500]}
    if not math.isfinite(number):
        reason = f"objective returned {number!r}; return a finite number (report divergence)"
        return None, {**attrs, "fail_reason": reason}
    return number, attrs


def json_safe_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """The trial's attrs as the storage can keep them (JSON, read back by every reader):
    a non-finite float or an integer no float holds becomes its text, anything that is no
    JSON value its ``repr`` (both cut to 500 characters). ``report.log`` takes numbers,
    strings, bools and lists of them; an attr that cannot be stored must not lose the
    trial's result."""
    return {str(k): _json_value(v) for k, v in attrs.items()}


def _json_value(value: Any, depth: int = 0) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**63 else repr(value)[:500]
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, list | tuple) and depth < 8:
        return [_json_value(v, depth + 1) for v in value]
    if isinstance(value, dict) and depth < 8:
        return {str(k): _json_value(v, depth + 1) for k, v in value.items()}
    if hasattr(value, "item"):  # a numpy or torch scalar
        try:
            return _json_value(value.item(), depth + 1)
        except (TypeError, ValueError, RuntimeError):
            pass
    return repr(value)[:500]


def _as_number(value: Any) -> float | None:
    """A Python, numpy or one-element torch number as a float; None for anything else
    (None, a string, a bool, a dict of metrics)."""
    if hasattr(value, "item") and not isinstance(value, int | float):
        try:
            value = value.item()
        except (TypeError, ValueError, RuntimeError):
            return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


#: The tail of a failed trial's traceback kept in its ``fail_traceback`` attr.
MAX_TRACEBACK = 10_000


#: hpsearch's own frames, which lead every objective's traceback: left out of it.
_ENGINE = str(Path(__file__).resolve().parent)
#: The package: its built-in objectives are the objective's code, wherever it is installed.
_PACKAGE = str(Path(__file__).resolve().parents[1])


def _library(filename: str) -> bool:
    """A frame of Python itself or an installed package: not the user's code."""
    import sysconfig

    if filename.startswith(_PACKAGE):
        return False
    paths = sysconfig.get_paths()
    return (
        "site-packages" in filename
        or "dist-packages" in filename
        or filename.startswith((paths["stdlib"], paths["platstdlib"]))
        or filename.startswith("<frozen ")
    )


def _failure(exc: Exception) -> dict[str, Any]:
    """A failed trial's attrs: the reason, its exception type, the user's frame (where the
    objective's own code raised it or called the library that did: what failures are
    grouped by and a stop's summary shows) and the traceback from the objective down,
    hpsearch's frames above it left out (the dashboard shows trial attrs)."""
    tb = exc.__traceback__
    while tb is not None and str(Path(tb.tb_frame.f_code.co_filename).resolve()).startswith(
        _ENGINE
    ):
        tb = tb.tb_next
    frames = traceback.extract_tb(tb)
    users = [f for f in frames if not _library(f.filename)]
    where = ""
    if frames:
        user = users[-1] if users else frames[0]
        where = f"{user.filename}:{user.lineno} in {user.name}" + (
            f": {user.line}" if user.line else ""
        )
    kind = type(exc).__qualname__
    if type(exc).__module__ not in ("builtins", "__main__"):
        kind = f"{type(exc).__module__}.{kind}"
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    if where:
        text = f"{type(exc).__name__} raised at {where}\n{text}"
    return {
        "fail_reason": f"{type(exc).__name__}: {exc}"[:500],
        "fail_type": kind[:200],
        "fail_where": where[:500],
        "fail_traceback": text[-MAX_TRACEBACK:],
    }


def _record_stopped(slot: Slot, attrs: dict[str, Any]) -> str:
    if not slot.finish_stopped(json_safe_attrs(attrs)):
        log.info("trial %d was re-queued while this worker was away; dropped", slot.number)
        return "lost"
    log.debug("trial %d stopped early after epoch %s", slot.number, slot.stopped_at)
    return "stopped"


def _record(slot: Slot, value: float | None, attrs: dict[str, Any]) -> str:
    if not slot.finish(value, attrs):
        log.info("trial %d was re-queued while this worker was away; dropped", slot.number)
        return "lost"
    if value is not None:
        return "completed"
    # One line per failed trial, at -v: a stopped search prints its reason once instead.
    where = f" ({attrs['fail_where']})" if attrs.get("fail_where") else ""
    log.info("trial %d failed: %s%s", slot.number, attrs["fail_reason"], where)
    if "fail_traceback" in attrs:
        log.debug("trial %d: %s", slot.number, attrs["fail_traceback"])
    return "failed"
