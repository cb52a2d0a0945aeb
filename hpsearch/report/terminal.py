"""Plain-text status and summary: stage tables, best trials, regions, edge warnings."""

from __future__ import annotations

from hpsearch.records import rank
from hpsearch.report.search import SearchView, StageView
from hpsearch.space import format_value


def format_status(view: SearchView) -> str:
    """One line per stage: progress and best value so far."""
    lines = [f"search {view.spec.name} ({view.spec.metric}, {view.spec.direction})"]
    for v in view.stages:
        c = v.counts
        done = c["complete"] + c["diverged"] + c["failed"]
        state = "not started" if v.space is None else ("done" if v.done else "running")
        best = rank(v.records, view.spec.direction)
        best_s = f"best {best[0].value:.4g}" if best and best[0].ok else "best -"
        lines.append(
            f"  {v.stage.name:<12} {done:>4}/{v.stage.trials:<4} {state:<11} "
            f"running {c['running']:<3} diverged {c['diverged']:<3} failed {c['failed']:<3} "
            f"{best_s}"
        )
    return "\n".join(lines)


def format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(
        [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
        + [fmt.format(*r) for r in rows]
    )


def format_stage(view: SearchView, v: StageView, top: int = 5) -> str:
    spec, stage = view.spec, v.stage
    c = v.counts
    head = (
        f"stage {stage.name}: {len(v.finished)}/{stage.trials} trials x {stage.epochs} epoch(s), "
        f"{stage.sampler} sampler - {c['complete']} complete, {c['diverged']} diverged, "
        f"{c['failed']} failed"
    )
    if v.space is None:
        return head + "\n  (not started)"
    lines = [head]
    if v.region_in is not None:
        lines.append("  searched: " + ", ".join(p.describe() for p in v.region_in.params))
    ranked = [r for r in rank(v.records, spec.direction) if r.ok][:top]
    if ranked:
        names = [p.name for p in v.space]
        rows = [
            [str(r.number), f"{r.value:.4g}"]
            + [format_value(v.space[n], r.params[n]) if n in r.params else "-" for n in names]
            for r in ranked
        ]
        table = format_table(["trial", spec.metric, *names], rows)
        lines += ["  " + line for line in table.splitlines()]
    if v.handed_on is not None:
        lines.append(
            f"  promising region (top {len(v.handed_on.kept)} of {v.handed_on.considered}):"
        )
        for p in v.handed_on.params:
            mark = f"  <- at the {p.edge} edge" if p.edge else ""
            lines.append(f"    {p.describe()}{mark}")
        lines += [f"  warning: {w}" for w in v.handed_on.warnings]
    return "\n".join(lines)


def format_summary(view: SearchView) -> str:
    return "\n\n".join(
        [f"search {view.spec.name}: {view.spec.metric} ({view.spec.direction})"]
        + [format_stage(view, v) for v in view.stages]
    )
