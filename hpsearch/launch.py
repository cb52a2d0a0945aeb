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
from typing import TYPE_CHECKING

import click

from hpsearch.errors import UserError
from hpsearch.urls import ENV_STORAGE, is_sqlite

if TYPE_CHECKING:
    from hpsearch.spec import StudySpec
    from hpsearch.store import SearchStore

log = logging.getLogger(__name__)

#: SQLite serialises every write behind one file lock: past a handful of workers they
#: spend their time waiting for it. Measured here: 4 workers on 0.5 s trials still scale.
MAX_SQLITE_WORKERS = 4
#: How long stopped workers get to re-queue their trials before they are killed.
STOP_GRACE_S = 20.0


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


def start_workers(
    url: str,
    name: str,
    workers: int,
    *,
    device: str,
    grace_period: int,
    max_failures: int | None = None,
) -> list[subprocess.Popen[bytes]]:
    cmd = [
        sys.executable,
        "-m",
        "hpsearch.cli",
        "worker",
        name,
        "--threads",
        str(threads_per_worker(workers)),
        "--device",
        device,
        "--grace-period",
        str(grace_period),
        "--no-progress",
        "--no-stop-summary",  # the launcher prints it, once
        *(["--max-failures", str(max_failures)] if max_failures is not None else []),
    ]
    env = {**os.environ, ENV_STORAGE: url}
    return [subprocess.Popen(cmd, env=env) for _ in range(workers)]


def run_local_workers(
    url: str,
    key: str,
    spec: StudySpec,
    workers: int,
    *,
    device: str = "auto",
    grace_period: int = 60,
    poll_s: float = 1.0,
    max_failures: int | None = None,
) -> int:
    """Run ``workers`` local worker processes on ``key`` (a search's name, or a compare
    baseline's study name) whose spec is ``spec``, until all exit.

    Returns 0 when every worker finished, 130 when interrupted (Ctrl-C or SIGTERM: the
    workers re-queue their running trials first), 1 when a worker failed or the search
    stopped on failures (which the caller reports).
    """
    from hpsearch.failfast import find_stop
    from hpsearch.store import SearchStore

    check_workers(url, workers)
    store = SearchStore.open(url, wait_s=5.0)  # progress only: the workers wait longer
    procs = start_workers(
        url, key, workers, device=device, grace_period=grace_period, max_failures=max_failures
    )
    # Installed explicitly: a launcher started in the background inherits SIGINT ignored.
    previous = {
        sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    stages = [(s.name, s.trials) for s in spec.stages]
    try:
        _watch(store, spec.name, procs, stages, poll_s)
    except KeyboardInterrupt:
        click.echo("\ninterrupted: stopping workers (they re-queue their trials)", err=True)
        _stop(procs)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    failed = [p.pid for p in procs if p.returncode not in (0, None)]
    if failed and find_stop(store, spec) is not None:
        return 1
    if failed:
        click.echo(f"worker process(es) {failed} failed; see their log above", err=True)
        return 1
    return 0


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _watch(
    store: SearchStore,
    name: str,
    procs: list[subprocess.Popen[bytes]],
    stages: list[tuple[str, int]],
    poll_s: float,
) -> None:
    """Show per-stage progress from the database until every worker has exited."""
    shown: dict[str, int] = {}
    while True:
        alive = [p for p in procs if p.poll() is None]
        try:
            done = store.finished_counts(name)
        except Exception as exc:  # the database is away; the workers retry on their own
            log.warning("progress unavailable: %s", type(exc).__name__)
            done = shown
        for stage, trials in stages:
            n = min(done.get(stage, 0), trials)
            if n != shown.get(stage):
                shown[stage] = n
                click.echo(f"stage {stage}: {n}/{trials} trials  ({len(alive)} workers)", err=True)
        if not alive:
            return
        time.sleep(poll_s)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGINT every worker, give them STOP_GRACE_S to re-queue, then kill the rest."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE_S
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("worker %d did not stop in time; killing it", p.pid)
            p.kill()
            p.wait()
