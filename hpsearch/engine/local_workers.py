"""Local worker processes for ``hpsearch launch --workers N``: start, watch, stop.

Each worker is a real OS process running ``hpsearch worker NAME`` (the same loop a worker
on another machine runs), so a crash or a kill of one is what it would be anywhere else.
The storage URL travels in ``$HPSEARCH_STORAGE``, not on the command line, so that a
password stays out of process lists. Progress is read from the database, the only source
of truth: the launcher knows nothing the workers have not recorded.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click

from hpsearch.core.errors import EXIT_BAD_INPUT, UserError
from hpsearch.engine.interrupts import stop_signals_interrupt
from hpsearch.engine.progress import Display
from hpsearch.store import policy
from hpsearch.store.policy import StorageUnreachable
from hpsearch.store.urls import ENV_STORAGE, is_sqlite

if TYPE_CHECKING:
    from hpsearch.core.spec import StudySpec
    from hpsearch.store import SearchStore

log = logging.getLogger(__name__)

#: SQLite serialises every write behind one file lock: past a handful of workers they
#: spend their time waiting for it. Measured here: 4 workers on 0.5 s trials still scale.
MAX_SQLITE_WORKERS = 4
#: How long stopped workers get to re-queue their trials before they are killed.
STOP_GRACE_S = 20.0
#: Workers started in place of ones that died, in all: a worker that dies on every trial
#: (out of memory, say) must not be restarted forever.
MAX_RESTARTS = 3
#: How long workers get to stop when the storage is unreachable (they cannot re-queue
#: their trials then: the next launch's workers recover them after --grace-period).
UNREACHABLE_STOP_S = 2.0


class TooManyWorkers(UserError):
    """More local workers than the storage can serve."""


def check_workers(url: str, workers: int) -> None:
    """Refuse worker counts the storage cannot serve, saying what to use instead."""
    if workers < 1:
        raise TooManyWorkers(f"--workers must be at least 1, but got {workers}")
    if is_sqlite(url) and ":memory:" in url and workers > 1:
        raise TooManyWorkers("an in-memory SQLite database cannot be shared by workers")
    if is_sqlite(url) and workers > MAX_SQLITE_WORKERS:
        raise TooManyWorkers(
            f"SQLite serves at most {MAX_SQLITE_WORKERS} local workers, but --workers is "
            f"{workers}; use PostgreSQL for more (--storage postgresql://user@host/db)"
        )


def threads_per_worker(workers: int) -> int:
    """This machine's cores split evenly: 2 workers on 2 cores get 1 thread each, so that
    they do not fight over cores and two are faster than one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // workers)


def visible_gpus() -> list[str]:
    """The GPUs local workers may be given: ``$CUDA_VISIBLE_DEVICES`` when set (a scheduler
    such as Slurm sets it to the job's GPUs), else every GPU ``nvidia-smi`` lists. Not
    torch: importing it costs the launcher seconds, and a custom objective may not use it."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def gpu_split(workers: int, gpus: list[str], per_worker: int = 1) -> list[str | None]:
    """``CUDA_VISIBLE_DEVICES`` for each local worker: ``per_worker`` GPUs each, round-robin
    over the visible ones (more workers than GPUs share them evenly); None for every worker
    when there is no GPU to give."""
    if not gpus:
        return [None] * workers
    take = min(per_worker, len(gpus))
    return [
        ",".join(gpus[(i * take + j) % len(gpus)] for j in range(take)) for i in range(workers)
    ]


def start_workers(
    url: str,
    name: str,
    workers: int,
    *,
    device: str,
    grace_period: int,
    threads: int | None = None,
    gpus_per_worker: int = 1,
    max_failures: int | None = None,
) -> Callable[[int], subprocess.Popen[bytes]]:
    """A function that starts local worker number ``i`` on ``name`` (the launch calls it
    for each worker, and again for a worker restarted in a dead one's place, which gets
    the dead one's GPUs).

    With ``--device cuda`` (or ``auto``) and GPUs visible, each worker sees only its own
    (``CUDA_VISIBLE_DEVICES``), so N workers on N GPUs do not all train on the first. A
    pinned ``cuda:K`` is left as asked.
    """
    cmd = [
        sys.executable,
        "-m",
        "hpsearch.cli",
        "worker",
        name,
        "--threads",
        str(threads or threads_per_worker(workers)),
        "--device",
        device,
        "--grace-period",
        str(grace_period),
        "--no-progress",
        "--no-stop-summary",  # a stop on failures: the launcher prints it, once
        *(["--max-failures", str(max_failures)] if max_failures is not None else []),
    ]
    split = gpu_split(
        workers, visible_gpus() if device in ("auto", "cuda") else [], gpus_per_worker
    )
    base = {**os.environ, ENV_STORAGE: url}

    def start(i: int) -> subprocess.Popen[bytes]:
        env = dict(base)
        gpus = split[i % workers]
        if gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpus
        return subprocess.Popen(cmd, env=env)

    return start


def search_completed(store: SearchStore, key: str) -> bool:
    """Every stage of ``key`` is complete (``StageView.complete``), as the database says.

    Exact where the progress counts are not: a trial failed because its worker died
    counts there, though its slot is re-queued and still to run; and a stage that stopped
    runs early has more slots than its ``trials``."""
    from hpsearch.report.search import load_search

    return all(v.complete for v in load_search(store, key).stages)


def exit_reason(returncode: int) -> str:
    """``killed by SIGKILL`` or ``exited with code 1``: how a worker process ended."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:  # a signal Python has no name for (a real-time one)
        return f"killed by signal {-returncode}"


@dataclass
class Pool:
    """The local workers of one launch: every process started, the ones that died, and
    how many were started in a dead one's place."""

    start_one: Callable[[int], subprocess.Popen[bytes]]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    dead: list[subprocess.Popen[bytes]] = field(default_factory=list)
    restarts: int = 0
    number: dict[int, int] = field(default_factory=dict)  # pid -> worker number

    def start(self, i: int) -> subprocess.Popen[bytes]:
        proc = self.start_one(i)
        self.procs.append(proc)
        self.number[proc.pid] = i
        return proc

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is None]

    def newly_dead(self) -> list[subprocess.Popen[bytes]]:
        """Workers that ended with a signal or a non-zero exit since the last call."""
        new = [p for p in self.procs if p.poll() not in (0, None) and p not in self.dead]
        self.dead.extend(new)
        return new

    def describe_dead(self) -> str:
        return ", ".join(f"{p.pid} ({exit_reason(p.returncode)})" for p in self.dead)


def run_local_workers(
    url: str,
    key: str,
    spec: StudySpec,
    workers: int,
    *,
    device: str = "auto",
    threads: int | None = None,
    grace_period: int = 60,
    gpus_per_worker: int = 1,
    progress: bool = True,
    max_failures: int | None = None,
    poll_s: float = 1.0,
) -> int:
    """Run ``workers`` local worker processes on ``key`` (a search's name, or a compare
    baseline's study name) whose spec is ``spec``, until all exit.

    A worker that dies while slots remain is replaced, at most MAX_RESTARTS times in all.
    Returns 0 when the search completed (a warning names any worker that died on the way),
    130 when interrupted (Ctrl-C or SIGTERM: the workers re-queue their running trials
    first), 1 when the search could not complete.
    """
    from hpsearch.engine.failfast import find_stop
    from hpsearch.store import SearchStore

    check_workers(url, workers)
    contact = Contact(url)
    # progress and the storage's pulse only: the workers wait longer
    store = SearchStore.open(url, wait_s=contact.probe_wait_s)
    pool = Pool(
        start_workers(
            url,
            key,
            workers,
            device=device,
            threads=threads,
            grace_period=grace_period,
            gpus_per_worker=gpus_per_worker,
            max_failures=max_failures,
        )
    )
    display = Display(spec, reload=lambda: store.current_spec(spec)) if progress else None
    try:
        with stop_signals_interrupt():
            for i in range(workers):
                pool.start(i)
            _watch(store, key, spec, pool, display, poll_s, contact)
    except StorageUnreachable as exc:
        click.echo(f"error: {exc}; stopping the workers", err=True)
        _stop(pool.procs, grace_s=UNREACHABLE_STOP_S)
        raise
    except KeyboardInterrupt:
        click.echo("\ninterrupted: stopping workers (they re-queue their trials)", err=True)
        _stop(pool.procs)
        return 130
    finally:
        if display is not None:
            display.close()
    # The outcome is read with a worker's patience: a blip now must not turn a search
    # that completed into exit 1 (the progress store above gives up after 5 s).
    judge = SearchStore.open(url)
    if find_stop(judge, spec) is not None:
        return 1  # stopped on failures: the caller says why, once
    if search_completed(judge, key):
        if pool.dead:
            click.echo(
                f"warning: worker(s) {pool.describe_dead()} died; the search completed without "
                "them",
                err=True,
            )
        return 0
    died = f": worker(s) {pool.describe_dead()} died, see their log above" if pool.dead else ""
    click.echo(f"the search did not complete{died}; launch it again to resume", err=True)
    return 1


class Contact:
    """When the launcher last heard from the storage, and when to give up on it.

    A launcher reads its progress every poll; when no read has succeeded for the
    unreachable bound (``hpsearch.store.network``; less the time one read may take, so
    that the exit comes within the bound), the storage is declared unreachable.
    """

    def __init__(self, url: str) -> None:
        from hpsearch.store import network

        lim = network.limits()
        self.url = url
        self.bound_s = lim.unreachable_s
        self.probe_wait_s = min(5.0, lim.unreachable_s / 6)
        self.give_up_s = max(1.0, self.bound_s - lim.connect_timeout_s - self.probe_wait_s - 2)
        self.last_ok = time.monotonic()
        self.ok = True

    def heard(self) -> None:
        self.last_ok, self.ok = time.monotonic(), True

    def missed(self, exc: BaseException) -> None:
        from hpsearch.store.policy import reason
        from hpsearch.store.urls import mask_text, mask_url

        self.ok = False
        silent = time.monotonic() - self.last_ok
        log.warning("progress unavailable: %s", mask_text(reason(exc), self.url))
        if silent > self.give_up_s:
            raise StorageUnreachable(
                f"the storage {mask_url(self.url)} has not answered for {silent:.0f} s "
                f"(the bound is {self.bound_s:g} s, $HPSEARCH_UNREACHABLE_S; "
                f"{mask_text(reason(exc), self.url)}); launch again when it is back: "
                "running trials are re-queued after --grace-period, nothing is lost"
            ) from exc


def _watch(
    store: SearchStore,
    key: str,
    spec: StudySpec,
    pool: Pool,
    display: Display | None,
    poll_s: float,
    contact: Contact | None = None,
) -> None:
    """Show per-stage progress from the database, and replace workers that die, until
    every worker has exited. A worker that died while the storage is away is replaced
    once it answers again (a worker gives up on a silent storage too)."""
    contact = contact or Contact(store.url)
    dead: list[subprocess.Popen[bytes]] = []
    while True:
        dead.extend(pool.newly_dead())
        try:
            counts = store.stage_counts(display.spec.name if display is not None else spec.name)
            contact.heard()
        except Exception as exc:  # the database is away; the workers retry on their own
            if policy.error_kind(exc) is None:
                raise
            contact.missed(exc)
        else:
            if display is not None:
                display.update(counts)
            while dead:
                _replace(store, key, spec, pool, dead.pop(0))
        if not pool.alive() and not dead:
            return
        if not pool.alive() and not contact.ok:
            continue  # no worker left and no storage: decide on the bound
        time.sleep(poll_s)


def _replace(
    store: SearchStore, key: str, spec: StudySpec, pool: Pool, dead: subprocess.Popen[bytes]
) -> None:
    """Start a worker in ``dead``'s place, unless it exited on bad input (a search gone,
    say), the search is complete, stopped on failures (the worker exited because of it) or
    the restarts are used up."""
    from hpsearch.engine.failfast import find_stop

    what = f"worker {dead.pid} {exit_reason(dead.returncode)}"
    if dead.returncode == EXIT_BAD_INPUT:  # its error is above; a new one would meet it again
        click.echo(f"warning: {what} (bad input); not restarted", err=True)
        return
    try:
        if find_stop(store, spec) is not None:
            return
    except Exception as exc:  # the database is away: judge by the other rules
        log.warning("cannot tell whether the search stopped: %s", type(exc).__name__)
    if pool.restarts >= MAX_RESTARTS:
        click.echo(f"warning: {what}; not restarted ({MAX_RESTARTS} restarts used)", err=True)
        return
    try:
        complete = search_completed(store, key)
    except Exception as exc:  # the database is away: the new worker will wait for it
        log.warning("cannot tell whether slots remain: %s", type(exc).__name__)
        complete = False
    if complete:
        click.echo(f"warning: {what}; the search is complete, no restart needed", err=True)
        return
    pool.restarts += 1
    new = pool.start(pool.number[dead.pid])
    click.echo(
        f"warning: {what}; started worker {new.pid} in its place "
        f"(restart {pool.restarts} of {MAX_RESTARTS})",
        err=True,
    )


def _stop(procs: list[subprocess.Popen[bytes]], grace_s: float = STOP_GRACE_S) -> None:
    """SIGINT every worker, give them ``grace_s`` to re-queue, then kill the rest."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("worker %d did not stop in time; killing it", p.pid)
            p.kill()
            p.wait()
