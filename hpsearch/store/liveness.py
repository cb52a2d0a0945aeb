"""Liveness: whose worker is still there, judged by heartbeats, and trials whose worker is
gone failed and re-queued.

The beats come from a small *heartbeat process* beside each worker (:class:`Pulse`), not
from a thread of the worker: a thread needs the worker's interpreter lock, and an
objective in a C call that keeps it (a long BLAS call, an extension that never releases
it) silenced the thread past the grace period, so another worker re-queued a live trial
and its result was dropped. The heartbeat process beats the worker's row and its current
trial for as long as the worker's process is there and not stopped (SIGSTOP, a frozen
job: its trial is re-queued as before), and exits with it. Run as
``python -m hpsearch.store.liveness``, it reads what to beat as JSON lines on stdin.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from hpsearch.store import policy
from hpsearch.store.model import Stage
from hpsearch.store.opening import StoreBase
from hpsearch.store.sql import workers
from hpsearch.store.sql.claims import (
    count_live,
    finish_trial,
    record_heartbeat,
    requeue_trial,
    stale_trials,
)
from hpsearch.store.urls import sqlite_path

log = logging.getLogger(__name__)

#: How long a worker waits for its heartbeat process to be ready (it imports SQLAlchemy
#: and Optuna, and connects): past it, the worker fails rather than run unbeaten trials.
PULSE_START_S = 60.0


class Liveness(StoreBase):
    """Heartbeats: a stage's live trials counted, lost ones recovered, a worker's own
    row beating (the search's live trials and workers are read by ``SearchReader``)."""

    def recover(self, stage: Stage, grace_period: float, *, max_retry: int) -> int:
        """Fail trials whose worker is gone and re-queue their slots (same params).

        Covers trials whose heartbeat stopped and trials that never got a heartbeat row
        (which Optuna's stale check skips). Not Optuna's ``fail_stale_trials``: on SQLite
        it lets several workers recovering at once each re-queue the same slot (see
        ``sql.claims.requeue_trial``). Returns how many slots this call re-queued.
        """
        stale = self._sql("find stale", stale_trials, stage.study_id, grace_period)
        reason = f"worker lost (no heartbeat for {grace_period:g} s)"
        requeued = 0
        for trial_id in stale:
            copy = self._sql(
                "re-queue slot", requeue_trial, trial_id, reason=reason, max_retry=max_retry
            )
            requeued += copy is not None
        return requeued

    def live_count(self, stage: Stage, grace_period: float) -> int:
        """Trials of the stage running under a worker that is presumed alive."""
        return self._sql("count running", count_live, stage.study_id, grace_period)

    @contextlib.contextmanager
    def attached(
        self, search: str, worker: str, interval: float, grace_period: float
    ) -> Iterator[Pulse | None]:
        """Keep ``worker``'s row on ``search`` beating every ``interval`` seconds while the
        block runs (preparing, claiming, running, waiting at a barrier), so that a delete
        sees the worker whatever it is doing; the row goes when the block ends. Yields the
        :class:`Pulse` that beats it (and the trials run inside the block), or None (and
        beats nothing) if the search is gone already."""
        if not self._sql("attach worker", workers.attach, search, worker):
            yield None
            return
        pulse = Pulse(self.url, search, worker, interval, grace_period)
        try:
            yield pulse
        finally:
            pulse.close()
            try:
                workers.detach(self._rdb.engine, search, worker)
            except Exception as exc:  # its beat goes stale instead
                log.warning("could not detach worker: %s", type(exc).__name__)


class Pulse:
    """The heartbeat process of one worker: started at once, told which trials to beat.

    It opens a connection for each beat and holds none between (``hpsearch:PID/beat`` in
    ``pg_stat_activity``, PID the worker's). It is restarted if it dies.
    """

    def __init__(
        self, url: str, search: str, worker: str, interval: float, grace_period: float
    ) -> None:
        self._setup = {
            "url": url,
            "search": search,
            "worker": worker,
            "interval": interval,
            "grace": grace_period,
        }
        self._trials: dict[int, dict[str, Any]] = {}
        self._proc = self._spawn()
        self._ready = False

    def _spawn(self) -> subprocess.Popen[bytes]:
        # -P (3.11+): the worker's working folder must not shadow the package; the
        # package's own root goes first on the path: the process runs the worker's hpsearch.
        root = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        safe_path = ["-P"] if sys.version_info >= (3, 11) else []
        proc = subprocess.Popen(
            [sys.executable, *safe_path, "-m", "hpsearch.store.liveness"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
        )
        self._write(proc, {"setup": self._setup, "parent": os.getpid()})
        return proc

    @staticmethod
    def _write(proc: subprocess.Popen[bytes], message: dict[str, Any]) -> None:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(message).encode() + b"\n")
        proc.stdin.flush()

    def _send(self) -> None:
        """Tell the process the current trials, restarting it if it died (killed, say)."""
        message = {"trials": [[tid, self._trials[tid]] for tid in self._trials]}
        if self._proc.poll() is None:
            try:
                self._write(self._proc, message)
                return
            except (BrokenPipeError, OSError):
                pass
        log.warning("the heartbeat process exited (code %s); starting another", self._proc.poll())
        self._proc = self._spawn()
        self._ready = False
        self._wait_ready()
        self._write(self._proc, message)

    def _wait_ready(self) -> None:
        """Wait for the process's first line: it is connected and beating. A process that
        cannot start is an error, not a worker whose trials are silently re-queued."""
        if self._ready:
            return
        out = self._proc.stdout
        assert out is not None
        readable, _, _ = select.select([out], [], [], PULSE_START_S)
        line = out.readline() if readable else b""
        if line.strip() != b"ready":
            code = self._proc.poll()
            raise RuntimeError(
                "the worker's heartbeat process did not start "
                f"({'exit code ' + str(code) if code is not None else 'no answer'}; "
                "its error, if any, is printed above)"
            )
        self._ready = True

    @contextlib.contextmanager
    def beating(
        self, trial_id: int, *, limit_at: float | None = None, timed_out: dict[str, Any]
    ) -> Iterator[None]:
        """Beat for ``trial_id`` while the block runs. ``limit_at`` (Unix time): if the
        trial is still on then, the worker's interpreter never came back to end it (a C
        call holding the lock past ``trial_timeout``), so the heartbeat process ends the
        worker (SIGKILL) and records the trial failed with the ``timed_out`` attrs."""
        self._wait_ready()
        self._trials[trial_id] = {"limit_at": limit_at, "attrs": timed_out}
        self._send()
        try:
            yield
        finally:
            del self._trials[trial_id]
            self._send()

    def close(self) -> None:
        """Stop the process: its stdin closes, it exits at once."""
        proc = self._proc
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


# -- the heartbeat process ----------------------------------------------------------------


def _parent_state(pid: int) -> str:
    """``gone``, ``stopped`` (SIGSTOP, a job control stop: it will not beat, so that its
    trial is re-queued as a frozen worker's is) or ``running``. Linux reads the process
    state from ``/proc``; elsewhere a process that exists counts as running."""
    if os.getppid() != pid:  # re-parented: the worker is gone (whoever holds our stdin)
        return "gone"
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "running"
    return {"T": "stopped", "t": "stopped", "Z": "gone", "X": "gone"}.get(state, "running")


def _pulse_main(stdin: IO[bytes]) -> None:
    """Beat until the worker goes: its row every interval, and each trial it names."""
    import sqlalchemy as sa

    from hpsearch.store.opening import engine_kwargs

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the worker's to handle
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # it ends with the worker, not before
    logging.basicConfig(format="hpsearch heartbeat: %(message)s", level=logging.WARNING)
    fd, buffer = stdin.fileno(), b""  # unbuffered reads: select() sees every byte
    while b"\n" not in buffer:
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        buffer += chunk
    line, buffer = buffer.split(b"\n", 1)
    first = json.loads(line)
    setup, parent = first["setup"], int(first["parent"])
    url = setup["url"]
    kwargs = engine_kwargs(url)
    # A connection per beat, none held between (every grace period / 4): what a worker
    # holds stays its own process's 2. The session limits and network timeouts still hold.
    for key in ("poolclass", "pool_size", "max_overflow", "pool_timeout", "pool_pre_ping"):
        kwargs.pop(key, None)
    kwargs["poolclass"] = sa.pool.NullPool
    if url.startswith("postgresql"):
        app = kwargs["connect_args"]["application_name"]
        if app == f"hpsearch:{os.getpid()}":
            kwargs["connect_args"]["application_name"] = f"hpsearch:{parent}/beat"
    engine = sa.create_engine(url, **kwargs)
    sqlite = sqlite_path(url)
    interval, search, worker = float(setup["interval"]), setup["search"], setup["worker"]
    grace = float(setup["grace"])
    trials: dict[int, dict[str, Any]] = {}
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    next_beat = time.monotonic() + interval
    while True:
        timeout = max(0.0, min(next_beat - time.monotonic(), 1.0))
        readable, _, _ = select.select([fd], [], [], timeout)
        if readable:
            chunk = os.read(fd, 65536)
            if not chunk:
                return  # the worker closed it, or exited
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                trials = {int(t): info for t, info in json.loads(line)["trials"]}
        state = _parent_state(parent)
        if state == "gone":
            return
        now = time.time()
        for trial_id, info in list(trials.items()):
            if info["limit_at"] is not None and now > info["limit_at"] + grace:
                _end_worker(engine, parent, trial_id, info["attrs"])
                return
        if time.monotonic() < next_beat:
            continue
        next_beat = time.monotonic() + interval
        if state == "stopped":
            continue
        gone = _removed_files(parent, sqlite) if sqlite is not None else []
        if gone:
            one = len(gone) == 1
            _stop_worker(
                parent,
                f"{' and '.join(gone)} {'was' if one else 'were'} removed while the worker "
                f"had {'it' if one else 'them'} open (its writes since are lost)",
            )
            return
        try:
            workers.beat(engine, search, worker)
            for trial_id in trials:
                record_heartbeat(engine, trial_id)
        except Exception as exc:  # the database is away; the next beat retries
            io_error = (
                None if sqlite is None else policy.sqlite_io_error(sqlite, policy.reason(exc))
            )
            if io_error is not None:
                # The worker's own connections, open before the files went, write on
                # into the removed log unseen: only a new connection (each beat's) sees
                # it. The worker is stopped (its stop signal) rather than lose its work.
                _stop_worker(parent, io_error)
                return
            log.warning("heartbeat failed: %s", type(exc).__name__)


def _removed_files(pid: int, path: Path) -> list[str]:
    """The files of the SQLite database ``path`` (itself, its ``-wal``, its ``-shm``) that
    the worker holds open though they were removed (Linux: ``/proc/PID/fd`` links end in
    `` (deleted)``). Its connections, open before, write on into them unseen, while every
    new connection starts from what was checkpointed: the worker's work is lost."""
    real = os.path.realpath(path)
    wanted = {f"{real}{end} (deleted)" for end in ("", "-wal", "-shm")}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []
    found = set()
    for fd in fds:
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target in wanted:
                found.add(target.removesuffix(" (deleted)"))
    return sorted(found)


def _stop_worker(parent: int, why: str) -> None:
    """Stop the worker as Ctrl-C does (SIGTERM), saying why: its database is unusable."""
    log.error(
        "%s; stopping worker %d: stop every process on the database and check the search "
        "(hpsearch status) before launching again",
        why,
        parent,
    )
    with contextlib.suppress(ProcessLookupError):
        os.kill(parent, signal.SIGTERM)


def _end_worker(engine: Any, parent: int, trial_id: int, attrs: dict[str, Any]) -> None:
    """The trial ran a grace period past its hard limit: the worker's interpreter is held
    (its own watchdog never ran), so it is killed and the trial recorded failed."""
    log.error(
        "trial %s held the worker's interpreter past its trial_timeout; killing worker %d",
        trial_id,
        parent,
    )
    with contextlib.suppress(ProcessLookupError):
        os.kill(parent, signal.SIGKILL)
    for _ in range(5):
        try:
            finish_trial(engine, trial_id, None, attrs)
            return
        except Exception as exc:  # heartbeat recovery re-queues it instead
            log.warning("could not record trial %s as timed out: %s", trial_id, exc)
            time.sleep(2)


if __name__ == "__main__":
    _pulse_main(sys.stdin.buffer)
