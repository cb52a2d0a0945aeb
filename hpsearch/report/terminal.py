"""Plain-text status and report: best trials, importance, regions handed on, warnings."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from hpsearch.core.failures import failures_text, last_failure, summary, traceback_tail
from hpsearch.core.records import TrialRecord, rank, recommended
from hpsearch.core.space import IntParam
from hpsearch.core.spec import StageSpec, StudySpec
from hpsearch.report.blocks import (
    best_trials,
    counts_line,
    final_table,
    region_table,
    thin_region_text,
)
from hpsearch.report.search import SearchView

if TYPE_CHECKING:  # the analysis is the full report's: status and best never load it
    from hpsearch.report.analysis import Report, StageReport


def format_state(view: SearchView) -> list[str]:
    """The lines status and report lead with: the search's state (running, stopped on
    failures with the cause, complete, not running with what is left), what to do about
    it, and the trials counted so that they add up."""
    state = view.state()
    lines = [f"  state: {state.word}" + (f" ({state.detail})" if state.detail else "")]
    if state.fix:
        lines.append(f"    {state.fix}")
    return [*lines, f"  trials: {trial_counts(view)}"]


def trial_counts(view: SearchView) -> str:
    """``28 planned: 20 finished (16 complete, 4 failed), 0 running, 8 queued`` over the
    whole search, where finished + running + queued + not queued yet = planned; failed
    attempts queued again are named apart (they are history, not failures now)."""
    total = {k: sum(v.counts[k] for v in view.stages) for k in view.stages[0].counts}
    planned = sum(v.slots for v in view.stages)
    kinds = ("complete", "diverged", "failed", "stopped")
    finished = sum(total[k] for k in kinds)
    shown = ", ".join(
        f"{total[k]} {'stopped early' if k == 'stopped' else k}"
        for k in kinds
        if total[k] or k in ("complete", "failed")
    )
    line = (
        f"{planned} planned: {finished} finished ({shown}), {total['running']} running, "
        f"{total['waiting']} queued"
    )
    later = planned - finished - total["running"] - total["waiting"]
    if later > 0:
        line += f", {later} in stages not prepared yet"
    requeued = sum(v.requeued for v in view.stages)
    if requeued:
        line += f"; {requeued} failed attempt(s) re-queued"
    return line


def format_status(view: SearchView) -> str:
    """The search's state, then one line per stage: progress and best value so far."""
    lines = [f"search {view.spec.name} ({view.spec.metric}, {view.spec.direction})"]
    lines += format_state(view)
    running = view.state().word == "running"
    for v in view.stages:
        c = v.counts
        done = c["complete"] + c["diverged"] + c["failed"] + c["stopped"]
        if v.space is None:
            state = "not started"
        elif v.stopped is not None:
            state = "stopped"
        elif v.done:
            state = "done"
        else:
            state = "running" if running and c["running"] else "waiting"
        best = rank(v.records, view.spec.direction)
        best_s = f"best {best[0].value:.4g}" if best and best[0].ok else "best -"
        lines.append(
            f"  {v.stage.name:<12} {done:>4}/{v.slots:<4} {state:<11} "
            f"running {c['running']:<3} queued {c['waiting']:<3} diverged {c['diverged']:<3} "
            f"failed {c['failed']:<3} {best_s}"
            + (f" stopped {c['stopped']} ({v.epochs_saved} epochs saved)" if c["stopped"] else "")
            + (f" ({v.requeued} failed attempt(s) re-queued)" if v.requeued else "")
        )
        if v.stopped is not None:
            lines.append(f"    stopped: {summary(v.stopped)}")
            if v.stopped.where:
                lines.append(f"    at {v.stopped.where}")
        lines += _last_failure(v.records, lines=12, indent="    ")
    return "\n".join(lines)


def _last_failure(records: list[TrialRecord], *, lines: int, indent: str) -> list[str]:
    """The latest failed trial's traceback (its tail), indented under its stage."""
    last = last_failure(records)
    if last is None:
        return []
    return [f"{indent}last failure, trial {last.number}:"] + [
        f"{indent}  {x}" for x in traceback_tail(last, lines)
    ]


def format_answer(view: SearchView) -> str:
    """The final answer, one line: ``best val_loss 0.0412 (stage fine, trial 7)``, and
    ``; 8 of 50 trials failed`` when some did (``launch``'s last line, ``report -q``)."""
    best = recommended([r for v in view.stages for r in v.records], view.spec.direction)
    found = (
        f"best {view.spec.metric} {best.value:.6g} (stage {best.stage}, trial {best.number})"
        if best is not None and best.value is not None
        else "no trial gave a usable value"
    )
    failed = format_failures(view)
    return found if failed is None else f"{found}; {failed}"


def format_failures(view: SearchView) -> str | None:
    """``16 of 40 trials failed`` over the whole search (failures re-queued and run again
    left out), or None when none did: the launch summary's count."""
    records = [r for v in view.stages for r in v.finished]
    failed = [r for r in records if r.state == "FAIL"]
    if not failed:
        return None
    return f"{len(failed)} of {len(records)} trials failed"


def failures_warning(view: SearchView) -> str | None:
    """The warning ``launch`` ends with when trials failed: how many, grouped by exception
    type and the user's frame, and where to read a traceback (None when none failed)."""
    count = format_failures(view)
    if count is None:
        return None
    lines = [
        f"warning: {count} (they stay failed; fix the cause and hpsearch retry "
        f"{view.spec.name} runs them again):"
    ]
    for v in view.stages:
        failed = [r for r in v.finished if r.state == "FAIL"]
        if failed:
            grouped = failures_text(failed).replace("\n", "\n    ")
            lines.append(f"  stage {v.stage.name}: {len(failed)} failed:\n    {grouped}")
    lines.append(f"  hpsearch status {view.spec.name} shows the last failure's traceback")
    return "\n".join(lines)


def format_stage(report: Report, s: StageReport) -> str:
    """One stage: its plan and counts, best trials, importance, region handed on, warnings."""
    spec, v = report.search.spec, s.view
    stage = v.stage
    head = (
        f"stage {stage.name}: {len(v.finished)}/{v.slots} trials x {stage.epochs} epoch(s), "
        f"{stage.sampler} sampler - {counts_line(v)}"
    )
    if stage.stop_early:
        head += f"\n  {early_stopping_text(stage)}"
    index = [s.name for s in spec.stages].index(stage.name) if stage in spec.stages else None
    if index is not None and spec.timeout_of(index) is not None:
        head += (
            f"\n  trial_timeout: trials were ended and failed after {spec.timeout_of(index):g} s"
        )
    if v.space is None:
        return head + "\n  (not started)"
    lines = [head]
    if v.region_in is not None:
        lines.append("  searched: " + ", ".join(f"{p.name} {p.describe_range()}" for p in v.space))
        if v.region_in.space != v.space:  # a model-based stage: the box is not a wall
            from hpsearch.core import prior

            box = ", ".join(f"{p.name} {p.describe_range()}" for p in v.region_in.space)
            lines.append(f"  {prior.box_role()}: {box}")
    best = best_trials(spec, v)
    if best is not None:
        lines += ["  " + line for line in best.text().splitlines()]
    imp = s.importance
    if imp.values:
        shown = ", ".join(f"{n} {x:.2f}" for n, x in imp.values.items())
        lines.append(f"  importance ({imp.evaluator}): {shown}")
    if imp.note:
        lines.append(f"  importance: {imp.note}")
    evidence = s.evidence_line()
    if evidence is not None:
        lines.append(f"  {evidence}")
    if s.final is not None:
        lines += final_lines(s)
    elif v.handed_on is not None:
        nxt = spec.stages[v.index + 1].name if v.index + 1 < len(spec.stages) else None
        to = f"handed to stage {nxt}" if nxt else "where to look next"
        lines.append(
            f"  promising region (top {len(v.handed_on.kept)} of {v.handed_on.considered}), {to}:"
        )
        if s.region_thin:
            lines.append(f"    {thin_region_text(s)}")
        else:
            lines += ["    " + line for line in region_table(s).text().splitlines()]
        if s.sure is not None:
            lines.append(f"  {s.sure.describe()}")
    lines += ["  warning: " + a.message.replace("\n", "\n    ") for a in s.advice]
    lines += _last_failure(v.records, lines=25, indent="  ")
    return "\n".join(lines)


def space_lines(spec: StudySpec) -> list[str]:
    """The searched parameters with their types, as ``--dry-run`` lists them: an ``int``
    (a range written with integers: ``low = 1``, not ``1.0``) takes whole numbers only."""
    lines = []
    for p in spec.space:
        if not p.numeric:
            shown = ", ".join(map(str, p.listed()))
            lines.append(f"    {p.name}: categorical, {{{shown}}}")
            continue
        scale = ", log" if p.log else ""
        step = f", step {p.step}" if isinstance(p, IntParam) and p.step != 1 else ""
        lines.append(
            f"    {p.name}: {p.kind}{scale}{step}, {p.format(p.low)} .. {p.format(p.high)}"
        )
    fixed = ", ".join(f"{k} = {v!r}" for k, v in spec.fixed.items())
    return ["  space:", *lines] + ([f"  fixed: {fixed}"] if fixed else [])


def final_lines(s: StageReport) -> list[str]:
    """The search's promising region (where to look next) and how sure it is."""
    f = s.final
    assert f is not None
    table = final_table(s)
    if table is None:
        return [f"  promising region: {f.describe()}"]
    return [
        "  promising region of the search (where to look next):",
        *("    " + line for line in table.text().splitlines()),
        f"  {f.describe()}",
    ]


def early_stopping_text(stage: StageSpec) -> str:
    """What the stage's early stopping does, in a line (the report and ``--dry-run``)."""
    budget = f"budget {stage.budget} epochs ({stage.trials} full runs' worth)"
    if stage.stop_early == "asha":
        rungs = []
        e = stage.min_epochs
        while e < stage.epochs:
            rungs.append(str(e))
            e *= stage.reduction_factor
        return (
            f"early stopping: asha, a run goes on past epoch {', '.join(rungs)} only in the "
            f"top 1/{stage.reduction_factor} there; {budget}, stopped runs' epochs buy more runs"
        )
    return (
        f"early stopping: median, a run stops from epoch {stage.min_epochs} on when worse "
        f"than the median of finished runs there; {budget}, stopped runs' epochs buy more runs"
    )


def format_report(report: Report) -> str:
    """The terminal report of a whole search."""
    spec = report.search.spec
    head = [
        f"search {spec.name}: {spec.metric} ({spec.direction})",
        *format_state(report.search),
        *format_history(report),
    ]
    return "\n\n".join(["\n".join(head)] + [format_stage(report, s) for s in report.stages])


def format_history(report: Report) -> list[str]:
    """A line per edit of the study file that a relaunch applied, and which edit added
    each stage that the first launch did not have."""
    history = report.search.history
    lines = []
    for edit in history[1:]:
        lines.append(f"  edited {local_time(edit.at)}: " + "; ".join(edit.changes))
    first = history[0].stages if history else ()
    for v in report.search.stages:
        added = next((e for e in history if v.stage.name in e.stages), None)
        if added is not None and v.stage.name not in first:
            lines.append(f"  stage {v.stage.name} came from the edit of {local_time(added.at)}")
    if lines:
        lines.insert(0, f"  launched {local_time(history[0].at)}")
    return lines


def local_time(at: str | None) -> str:
    """An ISO time of the spec history, in this machine's time zone, to the minute."""
    if at is None:
        return "(time not recorded)"
    return datetime.datetime.fromisoformat(at).astimezone().strftime("%Y-%m-%d %H:%M")


def format_summary(view: SearchView, evaluator: str | None = None) -> str:
    """What ``launch`` prints at the end and ``report`` prints: :func:`format_report`
    (``evaluator``: the importance evaluator, None for the analysis's default)."""
    from hpsearch.report.analysis import DEFAULT_EVALUATOR, analyze

    return format_report(analyze(view, evaluator or DEFAULT_EVALUATOR))
