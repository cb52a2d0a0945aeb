"""Plain-text status and report: best trials, importance, regions handed on, warnings."""

from __future__ import annotations

import datetime

from hpsearch.core.failures import summary
from hpsearch.core.records import rank
from hpsearch.core.spec import StageSpec
from hpsearch.report.analysis import DEFAULT_EVALUATOR, Report, StageReport, analyze
from hpsearch.report.blocks import best_trials, counts_line, region_table
from hpsearch.report.search import SearchView


def format_status(view: SearchView) -> str:
    """One line per stage: progress and best value so far."""
    lines = [f"search {view.spec.name} ({view.spec.metric}, {view.spec.direction})"]
    for v in view.stages:
        c = v.counts
        done = c["complete"] + c["diverged"] + c["failed"] + c["stopped"]
        state = "not started" if v.space is None else ("done" if v.done else "running")
        if v.stopped is not None:
            state = "stopped"
        best = rank(v.records, view.spec.direction)
        best_s = f"best {best[0].value:.4g}" if best and best[0].ok else "best -"
        lines.append(
            f"  {v.stage.name:<12} {done:>4}/{v.slots:<4} {state:<11} "
            f"running {c['running']:<3} diverged {c['diverged']:<3} failed {c['failed']:<3} "
            f"{best_s}"
            + (f" stopped {c['stopped']} ({v.epochs_saved} epochs saved)" if c["stopped"] else "")
        )
        if v.stopped is not None:
            lines.append(f"    stopped: {summary(v.stopped)}")
            if v.stopped.where:
                lines.append(f"    at {v.stopped.where}")
            lines.append(
                f"    fix the cause, then launch again (or hpsearch retry {view.spec.name})"
            )
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
    if v.handed_on is not None:
        nxt = spec.stages[v.index + 1].name if v.index + 1 < len(spec.stages) else None
        to = f"handed to stage {nxt}" if nxt else "where to look next"
        lines.append(
            f"  promising region (top {len(v.handed_on.kept)} of {v.handed_on.considered}), {to}:"
        )
        lines += ["    " + line for line in region_table(s).text().splitlines()]
        if s.sure is not None:
            lines.append(f"  {s.sure.describe()}")
    lines += [f"  warning: {a.message}" for a in s.advice]
    return "\n".join(lines)


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
    head = [f"search {spec.name}: {spec.metric} ({spec.direction})", *format_history(report)]
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


def format_summary(view: SearchView, evaluator: str = DEFAULT_EVALUATOR) -> str:
    """What ``launch`` prints at the end and ``report`` prints: :func:`format_report`."""
    return format_report(analyze(view, evaluator))
