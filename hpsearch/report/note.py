"""The dashboard view of a finished stage: a markdown note and a region figure in its study.

Reviewers in optuna-dashboard see only what hpsearch writes into the storage. When a stage
finishes, its study gets a note with what ``hpsearch report`` says of that stage, from the
same :class:`~hpsearch.report.analysis.StageReport` (importance, warnings, region rows) and
the same tables (``blocks``), and the region figure in the HTML report's colours.

The worker does not know about notes: it emits a ``stage_done`` event, and the callers
that run workers (``api.run``, which ``hpsearch launch`` and ``hpsearch worker`` go
through) install :func:`on_worker_event`, which writes the note. The note is computed from
the stored results of that stage alone and is deterministic; the first worker to finish
the stage writes it (it takes the note's lease), the others go on. A stage finished
again after more trials (an extension, a retry) gets its note drawn again; a note a
person wrote or edited in the dashboard is never overwritten.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from hpsearch.core.failures import failure_key, short_path
from hpsearch.core.records import TrialRecord
from hpsearch.objectives.catalog import spec_from_dict
from hpsearch.report.analysis import DEFAULT_EVALUATOR, StageReport, analyze_stage
from hpsearch.report.blocks import (
    best_trials,
    counts_line,
    final_table,
    importance_table,
    region_table,
    thin_region_text,
)

if TYPE_CHECKING:
    from hpsearch.core.spec import StudySpec
    from hpsearch.store import SearchStore

log = logging.getLogger(__name__)

#: The id of the region figure in the study's system attrs: saving again overwrites it.
FIGURE_ID = "region"
#: Trial numbers listed per failure reason; the rest are counted.
MAX_LISTED = 12
#: How long a note writer may take before another worker may write the note instead.
NOTE_LEASE_S = 300.0


def _problems(records: list[TrialRecord]) -> list[str]:
    """Failed trials grouped by exception type and the user's frame they were raised at
    (``core.failures.failure_key``: messages that differ only in a value go together),
    diverged ones by the reason the objective recorded: one crashing choice often fails
    many trials, and a reviewer in the dashboard wants their numbers to open them."""
    groups: dict[tuple[str, str, str], list[TrialRecord]] = {}
    for r in sorted(records, key=lambda r: r.number):
        if r.superseded:
            continue
        if r.state in ("FAIL", "PRUNED"):
            key = ("failed", *failure_key(r.attrs))
        elif r.diverged:
            key = ("diverged", str(r.attrs.get("diverged_reason", "no reason recorded")), "")
        else:
            continue
        groups.setdefault(key, []).append(r)
    lines = []
    for (what, kind, where), found in groups.items():
        numbers = [r.number for r in found]
        shown = ", ".join(map(str, numbers[:MAX_LISTED]))
        more = f" and {len(numbers) - MAX_LISTED} more" if len(numbers) > MAX_LISTED else ""
        trials = "trial" if len(numbers) == 1 else "trials"
        example = str(
            found[0].attrs.get("fail_reason" if what == "failed" else "diverged_reason")
            or "no reason recorded"
        )
        if what == "failed" and (where or example != kind):
            at = f" at `{short_path(where)}`" if where else ""
            lines.append(
                f"- {len(numbers)} {what} ({trials} {shown}{more}): {kind}{at}, e.g. `{example}`"
            )
        else:
            lines.append(f"- {len(numbers)} {what} ({trials} {shown}{more}): `{example}`")
    return lines


def stage_note(spec: StudySpec, s: StageReport) -> str:
    """The markdown note of a finished stage: what ``hpsearch report`` says of it."""
    v = s.view
    stage = v.stage
    lines = [
        f"## Stage `{stage.name}` of search `{spec.name}`",
        "",
        f"**{spec.metric}** ({spec.direction}) · {len(v.finished)}/{v.slots} trials × "
        f"{stage.epochs} epoch(s) · {stage.sampler} sampler · {counts_line(v)}",
    ]
    if v.region_in is not None:
        lines += ["", f"Searched the region handed on by stage `{spec.stages[v.index - 1].name}`:"]
        lines += [f"- {p.describe()}" for p in v.region_in.params]
    best = best_trials(spec, v)
    if best is not None:
        lines += ["", f"### Best {len(best.rows)} trials", "", best.markdown()]
    importance = importance_table(s.importance)
    if importance is not None:  # (a stage too small to rank them gets no section)
        lines += ["", "### Important parameters", "", importance.markdown()]
        lines += ["", f"_{s.importance.note}_"] if s.importance.note else []
    evidence = s.evidence_line()
    if evidence is not None:
        lines += ["", f"_{evidence}_"]
    region = v.handed_on
    if s.final is not None:
        table = final_table(s)
        lines += ["", "### Promising region (the last stage: where to look next)", ""]
        lines += [table.markdown(), ""] if table is not None else []
        lines += [s.final.describe() + "."]
    elif region is not None:
        nxt = spec.stages[v.index + 1].name if v.index + 1 < len(spec.stages) else None
        to = f"to stage `{nxt}`" if nxt else "(the last stage: where to look next)"
        lines += ["", f"### Promising region handed on {to}", ""]
        if s.region_thin:
            lines += [thin_region_text(s) + "."]
        else:
            lines += [
                f"Spanned by the top {len(region.kept)} of {region.considered} trials "
                f"(trials {', '.join(map(str, region.kept))}).",
                "",
                region_table(s).markdown(),
            ]
        lines += ["", s.sure.describe() + "."] if s.sure is not None else []
    if s.advice:
        lines += ["", "### Warnings", ""] + [f"- ⚠ {a.message}" for a in s.advice]
    problems = _problems(v.records)
    if problems:
        lines += ["", "### Failed and diverged trials", "", *problems]
    return "\n".join(lines) + "\n"


def on_worker_event(kind: str, info: dict[str, Any]) -> None:
    """The worker event hook that gives each finished stage its note (``stage_done``
    carries the worker's store, the spec it ran, the stage's index and the worker's id),
    drawn in this process."""
    if kind == "stage_done":
        write_stage_note(info["store"], info["spec"], info["index"], owner=info["worker"])


def on_worker_event_in_child(kind: str, info: dict[str, Any]) -> None:
    """:func:`on_worker_event`, with the note drawn in a child process (what ``api.run``
    installs). Drawing imports plotly and, for stages with parameters to rank,
    ``optuna.importance`` (and with it scikit-learn): 184 MB that a worker kept for the
    rest of the search (``benchmarks/faults.py``'s 5,000-trial soak), for a note written
    once per stage. One child draws every note this process writes (:class:`_Drawer`): it
    starts when a first stage finishes, and the later stages' notes, the search's last
    among them, are drawn by it already started and loaded, rather than each paying a
    Python start-up and those imports (1.5-3 s apiece) while its writer waits. The lease
    is still taken here, so only the writer hands a note over."""
    if kind == "stage_done":
        spec, index = info["spec"], info["index"]
        try:
            _write(info["store"], spec, index, info["worker"], draw=_DRAWER.draw)
        except Exception:
            log.warning("could not write the dashboard note of stage %d", index, exc_info=True)


#: Notes still being drawn in the background (:func:`on_worker_event_in_background`).
_drawing: list[threading.Thread] = []


def on_worker_event_in_background(kind: str, info: dict[str, Any]) -> None:
    """:func:`on_worker_event_in_child`, without its writer idling meanwhile: a stage
    that is not the search's last has its note drawn by a thread that waits for the
    child, while the worker goes on to the next stage (drawing took this worker 6-10 s of
    a 50 s search on a loaded machine: ``benchmarks/wall_clock.py``, docs/parallel.md).
    The search's last stage is drawn before the hook returns, after any note still being
    drawn, so that a search that ended has all its notes. The child holds its own
    connection meanwhile: one more than the worker's 2 while a note is drawn."""
    if kind != "stage_done":
        return
    if info["index"] + 1 < len(info["spec"].stages):
        thread = threading.Thread(
            target=on_worker_event_in_child, args=(kind, info), name="hpsearch-note"
        )
        thread.start()
        _drawing.append(thread)
        return
    wait_for_notes()
    on_worker_event_in_child(kind, info)


def wait_for_notes() -> None:
    """Wait until every note this process draws in the background is written (or given
    up: the child's own timeout bounds each), then let the drawing child go."""
    while _drawing:
        _drawing.pop(0).join()
    _DRAWER.close()


def write_stage_note(store: SearchStore, spec: StudySpec, index: int, *, owner: str) -> bool:
    """Write stage ``index``'s note and region figure, unless its note is a person's or
    is drawn from the trials the stage has now.

    Returns True if this call wrote them. Workers finishing a stage together do not all
    compute it: the first to take the note's lease (decided in the database) writes it
    from a read of that stage alone, and the others go on at once. The figure is saved
    first and the note last, so a writer that dies in between leaves no note, its lease
    expires, and the next worker that finishes writes both again. Never raises: the note
    is for reviewers, and a search must not stop because it could not be written.
    """
    try:
        return _write(store, spec, index, owner)
    except Exception:
        log.warning("could not write the dashboard note of stage %d", index, exc_info=True)
        return False


Draw = Callable[["SearchStore", "StudySpec", int], bool]


def _write(
    store: SearchStore, spec: StudySpec, index: int, owner: str, draw: Draw | None = None
) -> bool:
    stage = store.find_stage(spec.name, spec.stages[index].name)
    if stage is None:
        return False
    lease = store.lease(f"note:{stage.name}", owner=owner, duration_s=NOTE_LEASE_S)
    if not lease.acquire():
        return False  # another worker is writing it
    try:
        wrote = (draw or _draw)(store, spec, index)
    finally:
        lease.release()
    if wrote:
        log.info("wrote the dashboard note of %s", stage.name)
    return wrote


def _draw(store: SearchStore, spec: StudySpec, index: int) -> bool:
    """Draw and save the note and figure of a finished stage, unless its note is a
    person's or was drawn from the trials the stage has now. A stage that got trials since
    its note (an extension, a retry of failed trials) is drawn again when it finishes:
    the note it had described results that are not the stage's any more."""
    from hpsearch.report.figures import draw_region_figure, stage_colors
    from hpsearch.report.plotdata import region_figure_data
    from hpsearch.report.search import load_search, load_stage

    stage = store.find_stage(spec.name, spec.stages[index].name)
    if stage is None:
        return False
    state = store.note_state(stage)
    trials = store.trial_count(stage)
    if state.by_a_person or (state.version and state.trials == trials):
        return False  # a person's note, or drawn from these trials already
    v = load_stage(store, spec, index)
    if not v.done:
        return False
    # the last stage: the search's region, from every stage's runs
    runs = load_search(store, spec.name).stages if index == len(spec.stages) - 1 else None
    report = analyze_stage(spec, v, DEFAULT_EVALUATOR, runs=runs)
    data = region_figure_data(spec, report)
    figure = None
    if data is not None:
        color = stage_colors([s.name for s in spec.stages])[v.stage.name]
        figure = draw_region_figure(data, color)
    store.save_note(
        stage, stage_note(spec, report), trials=trials, figure=figure, figure_id=FIGURE_ID
    )
    return True


class _Drawer:
    """The child process (``python -m hpsearch.report.note``) that draws this process's
    notes: one job a line on its standard input (a JSON object: the storage URL, the spec,
    the stage's index), one answer a line on its standard output (see :func:`_main`). A
    job unanswered within ``NOTE_LEASE_S`` has its child killed (the next job starts
    another), and what the child wrote on its standard error logged."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._child: subprocess.Popen[str] | None = None
        self._answers: queue.Queue[str | None] = queue.Queue()
        self._errors: collections.deque[str] = collections.deque(maxlen=200)

    def draw(self, store: SearchStore, spec: StudySpec, index: int) -> bool:
        """:func:`_draw` of stage ``index``, in the child (started if there is none)."""
        from hpsearch.store.network import release_idle

        job = {"url": store.url, "spec": spec.to_dict(), "base_dir": spec.base_dir}
        release_idle(store.url)  # the child's connection stands in for this process's idle one
        with self._lock:
            child = self._started()
            assert child.stdin is not None
            try:
                child.stdin.write(json.dumps({**job, "index": index}) + "\n")
                child.stdin.flush()
                line = self._answers.get(timeout=NOTE_LEASE_S)
            except (OSError, queue.Empty):
                line = None
            if line is None:  # it died, or hangs: the next note gets a fresh one
                self._stop(kill=True)
                answer = {"answer": "died", "error": "".join(self._errors)}
            else:
                answer = json.loads(line)
            if answer["answer"] not in ("wrote", "skipped"):
                log.warning(
                    "the dashboard note of stage %d was not written:\n%s", index, answer["error"]
                )
            self._errors.clear()
            return bool(answer["answer"] == "wrote")

    def close(self) -> None:
        """Let the child exit (no more notes to draw), and wait for it."""
        with self._lock:
            self._stop(kill=False)

    def _started(self) -> subprocess.Popen[str]:
        if self._child is None or self._child.poll() is not None:
            self._stop(kill=True)
            self._child = subprocess.Popen(
                [sys.executable, "-m", "hpsearch.report.note"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            self._answers = queue.Queue()
            assert self._child.stdout is not None and self._child.stderr is not None
            answers, errors = self._answers, self._errors

            def hand_on(line: str) -> None:  # anything else it prints is told with a failure
                (answers.put if line.startswith('{"answer"') else errors.append)(line)

            for stream, put, end in (
                (self._child.stdout, hand_on, answers.put),
                (self._child.stderr, errors.append, lambda _: None),
            ):
                threading.Thread(
                    target=_drain, args=(stream, put, end), name="hpsearch-note", daemon=True
                ).start()
        return self._child

    def _stop(self, *, kill: bool) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        if kill:
            child.kill()
        if child.stdin is not None:  # end of jobs: the child exits
            with contextlib.suppress(OSError):
                child.stdin.close()
        try:
            child.wait(timeout=NOTE_LEASE_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _drain(stream: IO[str], put: Callable[[str], None], end: Callable[[None], None]) -> None:
    """Hand each line of the child's ``stream`` to ``put`` as it comes (a full pipe would
    stall the child), then None to ``end`` once it closed: a child that died answers no
    more."""
    with stream:
        for line in stream:
            put(line)
    end(None)


_DRAWER = _Drawer()


def _main() -> None:
    """The drawing child: :func:`_draw` for each job on standard input, until it closes,
    each answered by a JSON line: ``wrote``, ``skipped``, or ``failed`` with the traceback
    (in the answer, not on standard error: its pipe is read apart, and may lag)."""
    import traceback

    from hpsearch.store import SearchStore
    from hpsearch.store.network import release_idle

    for line in sys.stdin:
        job = json.loads(line)
        spec = spec_from_dict(job["spec"], base_dir=job["base_dir"])
        try:
            wrote = _draw(SearchStore.open(job["url"]), spec, job["index"])
            answer = {"answer": "wrote" if wrote else "skipped"}
        except Exception:
            answer = {"answer": "failed", "error": traceback.format_exc()}
        # between jobs it holds no connection: one more than its writer's only while drawing
        release_idle(job["url"])
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    _main()
