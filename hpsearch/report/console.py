"""The lines the commands print around a run: the plan of a dry run, the launch line, a
worker's tally, and the closing summary with the commands that look further."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

from hpsearch.core import prior
from hpsearch.core.plan import why
from hpsearch.report.terminal import (
    early_stopping_text,
    format_answer,
    space_lines,
)
from hpsearch.store.urls import mask_url, resolve_url

if TYPE_CHECKING:
    from hpsearch.core.spec import StudySpec
    from hpsearch.report.search import SearchView


def format_plan(spec: StudySpec) -> str:
    """What ``launch --dry-run`` prints: each stage's trials, epochs, sampler and region."""
    lines = [f"search {spec.name}: {spec.metric} ({spec.direction}), seed {spec.seed}"]
    lines += space_lines(spec)
    if spec.budget is not None:
        lines.append(
            f"  plan built from budget = {spec.budget} epochs, max_epochs = {spec.max_epochs} "
            "(hpsearch's default plan; list [[stage]] tables instead to set it yourself)"
        )
        assert spec.max_epochs is not None  # a budget comes with max_epochs (spec)
        lines.append(f"  {why(spec.stages, spec.budget, spec.max_epochs)}")
    for i, s in enumerate(spec.stages):
        keep = ""
        if i:
            prev = spec.stages[i - 1]
            if prev.stop_early:  # select_top counts the runs that went the distance
                kept = f"{s.keep:.0%} of the {prev.name} runs that went the distance"
            else:
                kept = f"{max(1, math.ceil(s.keep * prev.trials))} of {prev.trials}"
            keep = f", in the box of the best {kept} (margin {s.margin:g})"
            if prior.models_earlier(s.sampler, i):
                keep = (
                    f", seeded with every earlier run, {prior.box_role()}: the box of the "
                    f"best {kept} (margin {s.margin:g})"
                )
            if s.promote:
                keep += f", the best {s.promote} promoted first"
        if s.space:
            keep += ", its own ranges: " + ", ".join(
                # a stage narrows numeric params only (spec refuses the rest)
                f"{p.name} {p.low:g}..{p.high:g}"
                for p in s.space
                if p.numeric
            )
        lines.append(f"  {s.name}: {s.trials} trials x {s.epochs} epoch(s), {s.sampler}{keep}")
        if spec.timeout_of(i) is not None:
            lines.append(f"    each trial ended and failed after {spec.timeout_of(i):g} s")
        if s.stop_early:
            lines.append(f"    {early_stopping_text(s)}")
    lines.append(f"  total: {spec.total_epochs} epochs")
    return "\n".join(lines)


def format_launched(spec: StudySpec, new: bool, url: str) -> str:
    """The line before a launch's run: launched or resuming, where, how big."""
    return (
        f"{'launched' if new else 'resuming'} search {spec.name} in "
        f"{mask_url(url)}: {len(spec.stages)} stage(s), {spec.total_epochs} epochs in all"
    )


class Tally(Protocol):
    """What a worker counted (the engine's ``WorkerStats``; the report floor sits below)."""

    completed: int
    failed: int
    lost: int
    requeued: int


def format_worker_done(stats: Tally) -> str:
    """A worker's tally, when it leaves."""
    return (
        f"worker done: {stats.completed} completed, {stats.failed} failed, "
        f"{stats.lost} dropped, {stats.requeued} re-queued"
    )


def storage_flag(url: str) -> str:
    """`` --storage URL`` (password masked) for a command to print, unless the default
    storage (``$HPSEARCH_STORAGE`` or ./hpsearch.db) is the one in use."""
    return "" if url == resolve_url(None) else f" --storage {mask_url(url)}"


def format_closing(view: SearchView, url: str) -> str:
    """A launch's last line, after the report: the winner, how many trials failed, and the
    commands that look further (what ``-q`` leaves)."""
    name, flag = view.spec.name, storage_flag(url)
    return (
        f"{format_answer(view)}; more: hpsearch report {name}{flag}, hpsearch best {name}{flag}, "
        f"hpsearch dashboard{flag}"
    )
