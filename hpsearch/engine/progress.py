"""Progress a person can read, the same for one worker or many, counted from the database.

Every figure comes from the database (``SearchStore.stage_counts``), never from the worker
that happens to draw the display: a resumed stage starts at its done count, trials run by
workers on other machines count, and ``launch --workers N`` shows what ``launch`` shows.

- On a terminal: one tqdm bar per stage (tqdm comes with Optuna), with done/total, the
  rate, an ETA from the durations of recent trials and the number running, and the best
  value so far. tqdm's own rate and ETA are not used: they count only the updates this
  display has seen, so the first ETA of a resumed stage was far off.
- Elsewhere (a Slurm log, ``| tee``): one line every ``every_n`` trials or every
  ``every_s`` seconds, whichever comes first, with the same facts.

A relaunch may edit the search while a display runs (a stage given more trials, a stage
appended): the display reads the stored spec again every ``reload_s`` seconds and before
it shows a stage finished, so its totals follow, and a bar closed at the old total opens
again.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpsearch.core.spec import StudySpec
    from hpsearch.store import StageCounts


@dataclass(frozen=True)
class StageFacts:
    """What a display says of one stage."""

    name: str
    done: int
    total: int
    running: int
    best: float | None
    rate: float | None  # trials per second at the current parallelism
    eta_s: float | None

    @classmethod
    def of(
        cls,
        name: str,
        total: int,
        c: StageCounts,
        direction: str,
        watched: tuple[int, float] | None = None,
    ) -> StageFacts:
        """``watched``: (trials finished, seconds) since the display first saw the stage.
        Given, the rate is what was watched, and none until a trial finished: the stored
        durations of a resumed stage include failed attempts re-queued on a stop, which
        took milliseconds each. Else the recent trials' mean duration gives it."""
        best = c.lowest if direction == "minimize" else c.highest
        rate = eta = None
        if watched is not None:
            n, seconds = watched
            if c.done and n > 0 and seconds > 0:
                rate = n / seconds
        elif c.done and c.mean_duration_s:
            rate = max(1, c.running) / c.mean_duration_s
        if rate:
            eta = max(0, total - c.done) / rate
        return cls(name, min(c.done, total), total, c.running, best, rate, eta)

    def postfix(self) -> str:
        parts = [
            format_rate(self.rate),
            f"ETA {format_duration(self.eta_s)}",
            f"best {self.best:.4g}" if self.best is not None else "best --",
            f"{self.running} running",
        ]
        return ", ".join(parts)

    def line(self) -> str:
        return f"stage {self.name}: {self.done}/{self.total} trials, {self.postfix()}"


def format_rate(rate: float | None) -> str:
    """``12 trials/s``, ``0.5 trials/s``, ``40 s/trial``: no exponents, and slow trials
    in seconds each rather than a fraction of a trial per second."""
    if not rate or not math.isfinite(rate):
        return "-- trials/s"
    if rate < 0.1:
        return (
            f"{format_duration(1 / rate)} per trial"
            if rate < 1 / 60
            else f"{1 / rate:.0f} s/trial"
        )
    return f"{rate:.2g} trials/s" if rate < 10 else f"{rate:.0f} trials/s"


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@dataclass
class Display:
    """Draws the stages of one search from successive ``stage_counts`` snapshots."""

    spec: StudySpec
    stream: IO[str] = field(default_factory=lambda: sys.stderr)
    tty: bool | None = None  # None: ask the stream
    every_n: int | None = None  # None: a tenth of the stage
    every_s: float = 30.0
    reload: Callable[[], StudySpec] | None = None  # the stored spec, as an edit left it
    reload_s: float = 10.0
    #: Seconds on a monotonic clock; a test passes a fake one to let time pass at once.
    clock: Callable[[], float] = time.monotonic
    _bars: dict[str, Any] = field(default_factory=dict, init=False)
    _said: dict[str, tuple[int, float]] = field(default_factory=dict, init=False)
    _loaded: float = field(default=0.0, init=False)  # when the spec was read
    _finished: set[str] = field(default_factory=set, init=False)  # stages shown finished
    _first: dict[str, tuple[int, float]] = field(default_factory=dict, init=False)  # seen

    def __post_init__(self) -> None:
        if self.tty is None:
            self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._loaded = self.clock()

    def update(self, counts: dict[str, StageCounts]) -> None:
        now = self.clock()  # one reading per snapshot
        if self.reload is not None and now - self._loaded >= self.reload_s:
            self._reload()
        facts = self._facts(counts, now)
        if self.reload is not None and any(
            f.done >= f.total and f.name not in self._finished for f in facts
        ):  # before a stage is shown finished: an edit may have given it more trials
            self._reload()
            facts = self._facts(counts, now)
        for f in facts:
            if self.tty:
                self._draw(f)
            else:
                self._log(f, now)
            if f.done >= f.total:
                self._finished.add(f.name)
            else:
                self._finished.discard(f.name)

    def _reload(self) -> None:
        assert self.reload is not None
        self.spec = self.reload()
        self._loaded = self.clock()

    def _facts(self, counts: dict[str, StageCounts], now: float) -> list[StageFacts]:
        out = []
        for stage in self.spec.stages:
            c = counts.get(stage.name)
            if c is None or c.done + c.running + c.waiting == 0:
                continue  # not prepared yet
            # a stage that stops runs early appends slots as their epochs allow
            total = stage.trials
            if stage.stop_early:
                total = max(total, c.done + c.running + c.waiting)
            done0, at0 = self._first.setdefault(stage.name, (c.done, now))
            watched = (c.done - done0, now - at0)
            out.append(StageFacts.of(stage.name, total, c, self.spec.direction, watched))
        return out

    def _draw(self, f: StageFacts) -> None:
        from tqdm import tqdm

        bar = self._bars.get(f.name)
        if bar is not None and bar.disable and f.done < f.total:  # an edit re-opened it
            bar = None
        if bar is None:
            bar = tqdm(
                total=f.total,
                initial=f.done,
                desc=f"stage {f.name}",
                file=self.stream,
                bar_format=_bar_format(f),
                dynamic_ncols=True,
            )
            self._bars[f.name] = bar
        if bar.disable:  # closed: the stage was done
            return
        bar.total = f.total
        # The facts go in the format itself: tqdm's postfix is always led by ", ".
        bar.bar_format = _bar_format(f)
        bar.update(f.done - bar.n)
        bar.refresh()
        if f.done >= f.total:
            bar.close()

    def _log(self, f: StageFacts, now: float) -> None:
        said = self._said.get(f.name)
        if said is not None:
            last_done, last_time = said
            if last_done >= f.total:
                return  # finished, and said so
            step = self.every_n or max(1, f.total // 10)
            due = f.done - last_done >= step or now - last_time >= self.every_s
            if not due and f.done < f.total:
                return
        print(f.line(), file=self.stream, flush=True)
        self._said[f.name] = (f.done, now)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()


def _bar_format(f: StageFacts) -> str:
    facts = f.postfix().replace("{", "{{").replace("}", "}}")
    return "{desc}: {n_fmt}/{total_fmt} |{bar}| " + facts


class Watcher:
    """Polls the database and updates a display from a thread of its own, while this
    process runs a worker in its main thread (``launch`` with one worker)."""

    def __init__(
        self, read: Callable[[], dict[str, StageCounts]], display: Display, poll_s: float = 1.0
    ) -> None:
        self._read, self._display, self._poll_s = read, display, poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.refresh()
            if self._stop.wait(self._poll_s):
                return

    def refresh(self) -> None:
        try:
            self._display.update(self._read())
        except Exception:  # the database is away: the worker retries; the display waits
            return

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.refresh()  # the final counts
        self._display.close()
