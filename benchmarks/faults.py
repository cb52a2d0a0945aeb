"""Fault benchmark: the heavier fault scenarios of issue 10, several rounds each.

1. **Connection kills during preparation**: 4 workers (``hpsearch worker``) on PostgreSQL
   prepare and run a 1,000-slot stage and a 200-slot second stage while every session
   of the search's database is terminated (``pg_terminate_backend``) every 0.1 s (from
   before the workers start, so preparation, the runs and the stage barrier all see it).
2. **A frozen preparer**: the worker preparing an 800-slot stage is stopped (SIGSTOP)
   after its first batch of slots, a second worker takes its lease over when it expires
   and finishes the preparation, then the first is woken (SIGCONT). On PostgreSQL the
   take-over waits for the frozen session's idle-in-transaction timeout; on SQLite a
   process frozen inside a transaction keeps the only write lock until it is woken.
4. **A dark route**: 2 workers reach PostgreSQL through a TCP proxy that stops forwarding
   mid-stage with its sockets open (``DarkRoute``); each must exit 1 naming the storage
   within ``$HPSEARCH_UNREACHABLE_S`` (12 s here), and workers on the direct route then
   finish the search. Not in ``--quick``.
3. **Soak**: a 5,000-trial stage (and a 50-trial second stage) of a no-op objective, 2
   workers on PostgreSQL, each worker's RSS (``VmRSS`` in ``/proc/PID/status``) sampled
   every 0.5 s. Growth: the peak after the worker's first 100 trials minus its RSS then
   (imports and connection pools are in place by that time), over the whole run (the
   stage's end included: the note, the next stage's preparation) and while the stage
   runs. Target: < 50 MB.

Issue 20's scenarios (``--issue20`` runs only these; also in the full run):

5. **An interpreter held**: 2 workers, each trial's objective holds the GIL for 7 s in one
   C call (libc ``sleep`` through ``ctypes.PyDLL``) with a 3 s grace period: no trial may
   be re-queued (its worker's heartbeat process beats for it).
6. **SQLite's -wal/-shm removed** under 2 running workers: each must exit non-zero within
   30 s naming the files (not retry for 2 minutes, not call the database unreachable); what
   the database still shows must hold no slot run twice (the removed log's transactions
   are gone, so slots lost or left open are expected and not counted).
7. **Two relaunches at once** with different edits of the same search (real ``hpsearch
   launch`` processes): each must apply its file whole or exit 2; an exit 0 whose edit is
   not in the stored spec is a silent loss.
8. **A 200,000-slot stage** (SQLite): seconds from the worker's start to its first trial,
   and from SIGINT mid-preparation to its exit (the stage must be left not ready).

Every run is audited from the database at the end: each stage finished exactly its slots
(none lost), each slot once (none duplicated), nothing left WAITING or RUNNING, and every
worker exited 0. Prints one markdown table.

    python benchmarks/faults.py [--quick | --issue20] [--rounds 3] [--url postgresql://...]

``--quick`` (the test suite's smoke run): one round each, smaller stages, kills every
0.25 s, the frozen preparer on SQLite only (on PostgreSQL each round waits out the 30 s
idle-in-transaction timeout), a 500-trial soak.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: The PostgreSQL each run creates its database in (``--url``): the tests' one, else local.
ADMIN_URL = os.environ.get(
    "HPSEARCH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
SPACE = {
    "lr": {"low": 1e-5, "high": 1.0, "log": True},
    "wd": {"low": 1e-6, "high": 1e-2, "log": True},
    "act": {"choices": ["relu", "tanh"]},
}
GRACE = 3  # --grace-period: a worker's lease is max(10, grace) = 10 s
LEASE_S = 10
RSS_EVERY_S = 0.5
WARM_TRIALS = 100  # RSS growth is measured from a worker's 100th trial on


def noop_objective(params: dict, epochs: int, report) -> float:
    report(1, params["lr"])
    return params["lr"]


def slow_objective(params: dict, epochs: int, report) -> float:
    time.sleep(0.2)
    return noop_objective(params, epochs, report)


def gil_objective(params: dict, epochs: int, report) -> float:
    """Holds the interpreter lock for ``$FAULTS_HOLD_S`` seconds in one C call."""
    import ctypes

    ctypes.PyDLL(None).sleep(int(os.environ.get("FAULTS_HOLD_S", "7")))
    return noop_objective(params, epochs, report)


def first_objective(params: dict, epochs: int, report) -> float:
    """Writes when the first trial began to ``$FAULTS_FIRST`` (once)."""
    first = Path(os.environ["FAULTS_FIRST"])
    if not first.exists():
        first.write_text(repr(time.time()))
    return slow_objective(params, epochs, report)


@dataclass
class Run:
    """One run of a scenario: what the audit found and what was measured."""

    problems: list[str] = field(default_factory=list)  # lost / duplicated / left open
    bad_exits: list[str] = field(default_factory=list)  # one line per worker that failed
    rss_growth_mb: list[float] = field(default_factory=list)  # one per worker
    note: str = ""


# -- databases and workers --------------------------------------------------------------


@contextmanager
def database(backend: str, admin_url: str) -> Iterator[str]:
    """A fresh database for one run, dropped afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/faults.db"
        return
    import sqlalchemy as sa

    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"faults_{uuid.uuid4().hex[:10]}"
    with admin.connect() as c:
        c.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
            c.exec_driver_sql(f"DROP DATABASE {name}")
        admin.dispose()


def register(url: str, stages: list[int], objective: str = "noop_objective") -> None:
    from hpsearch import store as st
    from hpsearch.engine.stages import register_search
    from hpsearch.objectives.catalog import parse_spec

    spec = parse_spec(
        {
            "name": "faults",
            "objective": f"faults:{objective}",
            "metric": "value",
            "space": SPACE,
            "stage": [
                {"name": f"s{i}", "trials": n, "epochs": 1, "sampler": "random"}
                for i, n in enumerate(stages)
            ],
        },
        base_dir=str(HERE),
    )
    register_search(st.SearchStore.open(url), spec)


class Workers:
    """``hpsearch worker`` processes, each logging to its own file (read by the caller)."""

    def __init__(self, url: str, logs: Path, env: dict[str, str] | None = None) -> None:
        self.url, self.logs, self.env = url, logs, env or {}
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = (self.logs / f"worker{len(self.procs)}.log").open("wb")
        cmd = [sys.executable, "-m", "hpsearch.cli", "-v", "worker", "faults", "--threads",
               "1", "--grace-period", str(GRACE), "--no-progress"]  # fmt: skip
        env = {**os.environ, "HPSEARCH_STORAGE": self.url, **self.env}
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def wait(self, timeout: float = 600) -> list[str]:
        """Wait for every worker; one line (exit code, last log line) per worker that
        exited with a non-zero code or hung."""
        bad = []
        for i, p in enumerate(self.procs):
            try:
                code = p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                code = "hung"
            if code != 0:
                last = next((ln for ln in reversed(self.log(i).splitlines()) if ln.strip()), "")
                bad.append(f"worker {i} exited {code}: {last.strip()[:300]}")
        return bad

    def log(self, i: int) -> str:
        return (self.logs / f"worker{i}.log").read_text(errors="replace")


def audit(url: str) -> list[str]:
    """What the search lost, ran twice or left open, per stage; empty if exact."""
    from hpsearch import store as st
    from hpsearch.report.search import load_search

    problems = []
    for v in load_search(st.SearchStore.open(url, readonly=True), "faults").stages:
        slots = Counter(r.slot for r in v.finished)
        lost = [s for s in range(v.stage.trials) if s not in slots]
        twice = [s for s, n in slots.items() if n > 1 or s not in range(v.stage.trials)]
        left = [r.number for r in v.records if r.state in ("WAITING", "RUNNING")]
        for what, items in (("lost", lost), ("duplicated", twice), ("left open", left)):
            if items:
                problems.append(f"{v.stage.name}: {len(items)} {what}")
    return problems


class Stage:
    """A stage's slot count and ``ready`` flag, read through the store (cheap to poll)."""

    def __init__(self, url: str, stage: str = "s0") -> None:
        from hpsearch import store as st

        self.store = st.SearchStore.open(url, wait_s=5.0)
        self.name = stage
        self._stage = None

    def _found(self):
        if self._stage is None:
            self._stage = self.store.find_stage("faults", self.name)
        return self._stage

    def slots(self) -> int:
        """Slots enqueued so far (before the stage is ready, none has run)."""
        stage = self._found()
        return 0 if stage is None else self.store.open_count(stage)

    def ready(self) -> bool:
        from hpsearch import store as st

        stage = self._found()
        return stage is not None and bool(self.store.stage_attrs(stage).get(st.ATTR_READY))


# -- 1. connection kills -----------------------------------------------------------------


class Killer(threading.Thread):
    """Terminates every session on the search's PostgreSQL database every ``every`` s."""

    def __init__(self, admin_url: str, url: str, every: float) -> None:
        import sqlalchemy as sa

        super().__init__(daemon=True)
        self.admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.db, self.every = url.rsplit("/", 1)[1], every
        self.killed = 0
        self.done = threading.Event()

    def run(self) -> None:
        with self.admin.connect() as conn:
            while not self.done.wait(self.every):
                self.killed += conn.exec_driver_sql(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    f"WHERE datname = '{self.db}' AND pid <> pg_backend_pid()"
                ).scalar()

    def stop(self) -> int:
        self.done.set()
        self.join()
        self.admin.dispose()
        return self.killed


class DarkRoute(threading.Thread):
    """A TCP proxy to the PostgreSQL server that can go dark: ``freeze()`` stops it
    reading and forwarding anything while every socket stays open (and new connections
    are still accepted by the kernel, then never answered), as a dead NAT or a partition
    looks to a client whose peer still acknowledges packets. ``url(url)`` is ``url``
    routed through it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5432) -> None:
        super().__init__(daemon=True)
        import socket

        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.listener.getsockname()[1]
        self.dark = threading.Event()
        self.closed = threading.Event()
        self.pairs: list[tuple[object, object]] = []

    def url(self, url: str) -> str:
        from sqlalchemy.engine import make_url

        return make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(False)

    def freeze(self) -> None:
        self.dark.set()

    def thaw(self) -> None:
        self.dark.clear()

    def close(self) -> None:
        self.closed.set()
        self.listener.close()
        for a, b in self.pairs:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()  # type: ignore[attr-defined]

    def run(self) -> None:
        import socket

        while not self.closed.is_set():
            if self.dark.is_set():
                time.sleep(0.05)  # not accepting: the kernel's backlog takes connections
                continue
            self.listener.settimeout(0.1)
            try:
                client, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            self.pairs.append((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src, dst) -> None:  # type: ignore[no-untyped-def]
        import select

        while not self.closed.is_set():
            if self.dark.is_set():
                time.sleep(0.05)  # read nothing, forward nothing, close nothing
                continue
            try:
                ready, _, _ = select.select([src], [], [], 0.1)
                if not ready:
                    continue
                data = src.recv(65536)
                if not data:
                    dst.shutdown(1)
                    return
                dst.sendall(data)
            except OSError:
                return


def kills(admin_url: str, stages: list[int], workers: int = 4, every: float = 0.1) -> Run:
    run = Run()
    with database("postgres", admin_url) as url, tempfile.TemporaryDirectory() as logs:
        register(url, stages)
        killer = Killer(admin_url, url, every)
        killer.start()
        pool = Workers(url, Path(logs))
        try:
            for _ in range(workers):
                pool.start()
            run.bad_exits = pool.wait()
        finally:
            killed = killer.stop()
        retried = sum(pool.log(i).count("retrying in") for i in range(workers))
        run.problems = audit(url)
        run.note = f"{killed} sessions killed, {retried} calls retried"
    return run


# -- 4. a dark route ----------------------------------------------------------------------


def dark(admin_url: str, bound_s: float = 12.0, workers: int = 2) -> Run:
    """Workers reach PostgreSQL through a DarkRoute that goes dark mid-stage: each must
    exit 1 within the unreachable bound; then workers on the direct route finish the
    search, and the audit says whether anything was lost or ran twice."""
    run = Run()
    with database("postgres", admin_url) as url, tempfile.TemporaryDirectory() as logs:
        register(url, [60, 10], objective="slow_objective")
        route = DarkRoute()
        route.start()
        env = {"HPSEARCH_UNREACHABLE_S": f"{bound_s:g}"}
        pool = Workers(route.url(url), Path(logs), env)
        procs = [pool.start() for _ in range(workers)]
        stage = Stage(url)
        deadline = time.monotonic() + 60
        while stage.slots() < 10 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)
        route.freeze()
        start = time.monotonic()
        took = []
        for p in procs:
            try:
                p.wait(timeout=bound_s + 60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                run.bad_exits.append(f"worker {p.pid} hung on the dark route")
            took.append(time.monotonic() - start)
        route.close()
        late = [t for t in took if t > bound_s + 4]
        if late:
            run.bad_exits.append(f"gave up after {max(late):.0f} s (bound {bound_s:g} s)")
        named = sum("stayed unreachable" in pool.log(i) for i in range(workers))
        after = Workers(url, Path(logs) / "after")
        (Path(logs) / "after").mkdir()
        for _ in range(workers):
            after.start()
        run.bad_exits += after.wait()
        run.problems = audit(url)
        run.note = (
            f"workers exited {', '.join(f'{t:.1f}' for t in took)} s after the route went "
            f"dark (bound {bound_s:g} s), {named}/{workers} naming the storage; resumed direct"
        )
    return run


# -- 2. a frozen preparer ---------------------------------------------------------------


def frozen(backend: str, admin_url: str, slots: int, attempts: int = 5) -> Run:
    """Freeze the preparer after its first batch; another worker takes over; wake it."""
    for _ in range(attempts):
        with database(backend, admin_url) as url, tempfile.TemporaryDirectory() as logs:
            register(url, [slots, 8])
            stage = Stage(url)
            pool = Workers(url, Path(logs))
            preparer = pool.start()
            deadline = time.monotonic() + 60
            while (at := stage.slots()) == 0 and time.monotonic() < deadline:
                time.sleep(0.001)
            preparer.send_signal(signal.SIGSTOP)
            if stage.slots() >= slots:  # it finished before the freeze: try again
                preparer.send_signal(signal.SIGCONT)
                pool.wait()
                continue
            start = time.monotonic()
            pool.start()
            limit = LEASE_S + 6 if backend == "sqlite" else 90
            while not stage.ready() and time.monotonic() - start < limit:
                time.sleep(0.1)
            waited = time.monotonic() - start
            took_over = stage.ready()
            preparer.send_signal(signal.SIGCONT)
            run = Run(bad_exits=pool.wait())
            run.problems = audit(url)
            if not took_over and backend != "sqlite":
                run.problems.append("the frozen preparer blocked the other worker")
            how = f"taken over in {waited:.0f} s" if took_over else "kept SQLite's write lock"
            run.note = f"froze at {at} slots, {how}"
            return run
    raise RuntimeError(f"the preparer finished {slots} slots before it could be frozen")


# -- 3. soak with RSS sampled -----------------------------------------------------------


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return None


def soak(admin_url: str, trials: int, workers: int = 2) -> Run:
    """RSS growth of each worker: over the whole run (the worst is the table's figure),
    and while the big stage runs (its trials only, before its end: a leak shows here)."""
    from hpsearch import store as st

    with database("postgres", admin_url) as url, tempfile.TemporaryDirectory() as logs:
        register(url, [trials, 50])
        pool = Workers(url, Path(logs))
        procs = [pool.start() for _ in range(workers)]
        samples: dict[int, list[tuple[int, int]]] = {p.pid: [] for p in procs}  # (done, kB)
        store = st.SearchStore.open(url, wait_s=5.0)
        while any(p.poll() is None for p in procs):
            counts = store.stage_counts("faults")
            done = counts["s0"].done if "s0" in counts else 0
            for p in procs:
                kb = rss_kb(p.pid) if p.poll() is None else None
                if kb is not None:
                    samples[p.pid].append((done, kb))
            time.sleep(RSS_EVERY_S)
        run = Run(bad_exits=pool.wait())
        run.problems = audit(url)
        during, peaks = [], []
        for series in samples.values():
            warm = [(done, kb) for done, kb in series if done >= WARM_TRIALS * workers]
            if not warm:
                continue
            base = warm[0][1]
            run.rss_growth_mb.append((max(kb for _, kb in warm) - base) / 1024)
            running = [kb for done, kb in warm if done < trials]
            during.append((max(running, default=base) - base) / 1024)
            peaks.append(max(kb for _, kb in warm) / 1024)
        notes = sum(pool.log(i).count("wrote the dashboard note") for i in range(workers))
        run.note = (
            f"{trials} + 50 trials; growth while the stage ran: "
            f"{', '.join(f'{g:.1f}' for g in during)} MB; whole run: "
            f"{', '.join(f'{g:.0f}' for g in run.rss_growth_mb)} MB "
            f"({notes} stage notes written); peak RSS {max(peaks, default=0):.0f} MB"
        )
    return run


# -- 5-8. issue 20 ---------------------------------------------------------------------


def held(backend: str, admin_url: str, trials: int = 4, hold_s: int = 7) -> Run:
    """Objectives holding the GIL past the grace period: nothing re-queued, nothing lost."""
    with database(backend, admin_url) as url, tempfile.TemporaryDirectory() as logs:
        register(url, [trials, 2], objective="gil_objective")
        pool = Workers(url, Path(logs), {"FAULTS_HOLD_S": str(hold_s)})
        for _ in range(2):
            pool.start()
        run = Run(bad_exits=pool.wait())
        run.problems = audit(url)
        lost = sum(pool.log(i).count("while this worker was away") for i in range(2))
        if lost:
            run.problems.append(f"{lost} results dropped")
        run.note = f"GIL held {hold_s} s per trial, grace {GRACE} s: {lost} results dropped"
    return run


def wal_removed(admin_url: str) -> Run:
    """Remove a running SQLite database's -wal and -shm: both workers exit 1 quickly."""
    run = Run()
    with database("sqlite", admin_url) as url, tempfile.TemporaryDirectory() as logs:
        register(url, [200, 10], objective="slow_objective")
        path = Path(url.removeprefix("sqlite:///"))
        pool = Workers(url, Path(logs))
        procs = [pool.start() for _ in range(2)]
        stage = Stage(url)
        deadline = time.monotonic() + 60
        while not stage.ready() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        start, took, codes = time.monotonic(), [], []
        for i, p in enumerate(procs):
            try:
                code: int | str = p.wait(timeout=120)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                code = "hung"
            took.append(time.monotonic() - start)
            text = pool.log(i)
            named = f"{path}-wal" in text and "removed while" in text
            codes.append(code)
            if code in (0, "hung") or not named or took[-1] > 30:
                run.bad_exits.append(f"worker {i} exited {code} after {took[-1]:.0f} s")
        from hpsearch.store import StorageBroken

        try:
            run.problems = [p for p in audit(url) if "duplicated" in p]
            after = "what the database shows holds no slot twice"
        except StorageBroken:  # the removed log held the schema too: a new reader fails
            after = "the database reads as damaged afterwards (disk I/O error), as they said"
        took_s = ", ".join(f"{t:.1f}" for t in took)
        run.note = f"workers exited {codes} {took_s} s after the removal; {after}"
    return run


def edit_race(backend: str, admin_url: str) -> Run:
    """Two ``hpsearch launch`` processes at once, one raising s0's trials, the other s1's
    (its file keeps s0 as stored): neither edit may vanish while its launch exits 0."""
    import json

    run = Run()
    with database(backend, admin_url) as url, tempfile.TemporaryDirectory() as tmp:
        register(url, [20, 5])
        first = Workers(url, Path(tmp))
        first.start()
        run.bad_exits = first.wait()
        base = {"name": "faults", "objective": "faults:noop_objective", "metric": "value"}
        files = []
        for name, trials in (("a", [30, 5]), ("b", [20, 10])):
            text = "".join(f"{k} = {json.dumps(v)}\n" for k, v in base.items())
            for param, spec in SPACE.items():
                text += f"[space.{param}]\n" + "".join(
                    f"{k} = {json.dumps(v)}\n" for k, v in spec.items()
                )
            for i, n in enumerate(trials):
                text += f'[[stage]]\nname = "s{i}"\ntrials = {n}\nepochs = 1\n'
                text += 'sampler = "random"\n'
            files.append((Path(tmp) / f"{name}.toml", trials))
            files[-1][0].write_text(text)
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hpsearch.cli",
                    "launch",
                    str(f),
                    "--storage",
                    url,
                    "--no-progress",
                    "--grace-period",
                    str(GRACE),
                ],
                cwd=HERE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
            for f, _ in files
        ]
        outs = [p.communicate(timeout=300)[0] for p in procs]
        from hpsearch import store as st

        spec = st.SearchStore.open(url, readonly=True).find_spec("faults")
        assert spec is not None
        stored = [s.trials for s in spec.stages]
        codes = [p.returncode for p in procs]
        for (f, trials), code, out in zip(files, codes, outs, strict=True):
            changed = [i for i in range(2) if trials[i] != [20, 5][i]]
            if code == 0 and any(stored[i] != trials[i] for i in changed):
                run.problems.append(f"{f.name}'s edit silently lost")
            elif code not in (0, 2):
                run.bad_exits.append(f"{f.name} exited {code}: {out.strip()[-200:]}")
        run.problems += audit(url)
        run.note = f"exits {codes[0]}/{codes[1]}, stored trials {'+'.join(map(str, stored))}"
    return run


def huge(admin_url: str, slots: int = 200_000) -> Run:
    """Seconds to a 200,000-slot stage's first trial, and from SIGINT mid-preparation to
    the exit (the stage must be left not ready)."""
    run = Run()
    with tempfile.TemporaryDirectory() as tmp:
        first = Path(tmp) / "first"
        for stop in (False, True):
            with database("sqlite", admin_url) as url:
                register(url, [slots], objective="first_objective")
                pool = Workers(url, Path(tmp), {"FAULTS_FIRST": str(first)})
                first.unlink(missing_ok=True)
                start = time.time()
                proc = pool.start()
                stage = Stage(url)
                if stop:
                    while stage.slots() == 0 and proc.poll() is None:
                        time.sleep(0.05)
                    sent = time.monotonic()
                    proc.send_signal(signal.SIGINT)
                    proc.wait(timeout=120)
                    took = time.monotonic() - sent
                    if stage.ready():
                        run.problems.append("the stopped stage was marked ready")
                    run.note += f"; SIGINT at {stage.slots():,} slots: exited in {took:.1f} s"
                    continue
                while not first.exists() and time.time() - start < 600:
                    time.sleep(0.1)
                begun = float(first.read_text()) - start
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=120)
                run.note = f"first trial {begun:.1f} s after the worker started"
    return run


# -- the table --------------------------------------------------------------------------


def row(scenario: str, backend: str, runs: list[Run]) -> str:
    bad = sum(bool(r.problems) for r in runs)
    exits = sum(len(r.bad_exits) for r in runs)
    growth = [g for r in runs for g in r.rss_growth_mb]
    worst = f"{max(growth):.1f} MB" if growth else "-"
    details = "; ".join(dict.fromkeys(p for r in runs for p in r.problems))
    notes = "; ".join([r.note for r in runs] + [e for r in runs for e in r.bad_exits])
    return (
        f"| {scenario} | {backend} | {len(runs)} | {bad}{f' ({details})' if details else ''} "
        f"| {exits} | {worst} | {notes} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=ADMIN_URL)
    parser.add_argument("--quick", action="store_true", help="smoke run: one small round each")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--issue20", action="store_true", help="only scenarios 5-8")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    print("| scenario | storage | runs | runs that lost or duplicated anything "
          "| worker exits != 0 | worst RSS growth | details |")  # fmt: skip
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    if not args.quick:
        issue20(args.url, rounds)
    if args.issue20:
        return
    kill_stages, every = ([100, 20], 0.25) if args.quick else ([1000, 200], 0.1)
    runs = [kills(args.url, kill_stages, every=every) for _ in range(rounds)]
    scenario = (
        f"sessions killed every {every:g} s, 4 workers, {'+'.join(map(str, kill_stages))} slots"
    )
    print(row(scenario, "PostgreSQL", runs), flush=True)
    slots = 300 if args.quick else 800
    for backend, name in (("postgres", "PostgreSQL"), ("sqlite", "SQLite")):
        if args.quick and backend == "postgres":
            continue  # its take-over waits out the 30 s idle-in-transaction timeout
        runs = [frozen(backend, args.url, slots) for _ in range(rounds)]
        scenario = f"preparer frozen (SIGSTOP) past its lease, {slots} slots"
        print(row(scenario, name, runs), flush=True)
    if not args.quick:
        runs = [dark(args.url) for _ in range(rounds)]
        print(row("route dark (frozen proxy), 2 workers, bound 12 s", "PostgreSQL", runs))
    trials = 500 if args.quick else 5000
    runs = [soak(args.url, trials)]
    print(row(f"soak: {trials:,}-trial stage, 2 workers, no-op objective", "PostgreSQL", runs))


def issue20(url: str, rounds: int) -> None:
    for backend, name in (("sqlite", "SQLite"), ("postgres", "PostgreSQL")):
        runs = [held(backend, url) for _ in range(rounds)]
        print(row("GIL held 7 s per trial (grace 3 s), 2 workers", name, runs), flush=True)
    runs = [wal_removed(url) for _ in range(rounds)]
    print(row("-wal and -shm removed under 2 workers", "SQLite", runs), flush=True)
    for backend, name in (("sqlite", "SQLite"), ("postgres", "PostgreSQL")):
        runs = [edit_race(backend, url) for _ in range(rounds)]
        print(row("two relaunches at once, different edits", name, runs), flush=True)
    print(row("200,000-slot stage: first trial; SIGINT while preparing", "SQLite", [huge(url)]))


if __name__ == "__main__":
    main()
