"""Plain-text status and report: best trials, importance, regions handed on, warnings."""

from __future__ import annotations

from hpsearch.failfast import summary
from hpsearch.records import rank
from hpsearch.regions import describe_range
from hpsearch.report.analysis import DEFAULT_EVALUATOR, Report, StageReport, analyze
from hpsearch.report.search import SearchView
from hpsearch.space import format_value
from hpsearch.spec import StageSpec


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


def format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    return "\n".join(line.rstrip() for line in lines + [fmt.format(*r) for r in rows])


def format_stage(report: Report, s: StageReport, top: int = 5) -> str:
    """One stage: its plan and counts, best trials, importance, region handed on, warnings."""
    spec, v = report.search.spec, s.view
    stage = v.stage
    c = v.counts
    head = (
        f"stage {stage.name}: {len(v.finished)}/{v.slots} trials x {stage.epochs} epoch(s), "
        f"{stage.sampler} sampler - {c['complete']} complete, {c['diverged']} diverged, "
        f"{c['failed']} failed{v.stopped_text}"
        + (f", {c['running']} running" if c["running"] else "")
    )
    if stage.stop_early:
        head += f"\n  {early_stopping_text(stage)}"
    if v.space is None:
        return head + "\n  (not started)"
    lines = [head]
    if v.region_in is not None:
        lines.append("  searched: " + ", ".join(f"{p.name} {describe_range(p)}" for p in v.space))
    ranked = [r for r in rank(v.records, spec.direction) if r.ok][:top]
    if ranked:
        names = v.space.names
        rows = [
            [str(r.number), f"{r.value:.4g}"]
            + [format_value(v.space[n], r.params[n]) if n in r.params else "-" for n in names]
            for r in ranked
        ]
        table = format_table(["trial", spec.metric, *names], rows)
        lines += ["  " + line for line in table.splitlines()]
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
        table = format_table(
            ["parameter", "range", "of stage range", "where", "kept", "best", ""],
            [
                [
                    r.name,
                    r.range,
                    r.was,
                    r.bar,
                    f"{r.kept:.0%}",
                    r.best,
                    f"<- {r.edge} edge" if r.edge else "",
                ]
                for r in s.region
            ],
        )
        lines += ["    " + line for line in table.splitlines()]
        if s.sure is not None:
            lines.append(f"    {s.sure.describe()}")
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
    return "\n\n".join(
        [f"search {spec.name}: {spec.metric} ({spec.direction})"]
        + [format_stage(report, s) for s in report.stages]
    )


def format_summary(view: SearchView, evaluator: str = DEFAULT_EVALUATOR) -> str:
    """What ``launch`` prints at the end and ``report`` prints: :func:`format_report`."""
    return format_report(analyze(view, evaluator))
