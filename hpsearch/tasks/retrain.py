"""``hpsearch best --retrain``: run the objective once more on the winner, as its worker did.

The call goes through the worker's own code (``worker.call_objective``): the same merge of
``[fixed]`` and searched params, the same built-in extras (split seed, metric, data
folder), the same Reporter with the trial's seed, and the same check of what the
objective returned. A second copy of that path could drift from the first, and then a
retrained model would silently differ from the trial it claims to reproduce. With the
trial's epochs, device and thread count it gives the stored value again, bit for bit on
CPU. Nothing is written to the storage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpsearch.core.errors import UserError
from hpsearch.core.spec import StudySpec
from hpsearch.core.trial_handle import SAVE_PATH_KEY
from hpsearch.engine.loader import load_objective
from hpsearch.engine.worker import call_objective, checked
from hpsearch.tasks.best import Winner

#: What a retrain that missed the stored value (same params, seed and epochs) means.
NOT_REPRODUCED = (
    "the stored value differs from this one although params, seed and epochs are the same: "
    "the device, the thread count or the library versions differ from the worker's"
)


class RetrainFailed(RuntimeError):
    """The objective failed, or did not save the model it was asked to save (exit 1)."""


@dataclass(frozen=True)
class Retrained:
    """One retraining run of the winner."""

    winner: Winner
    epochs: int
    value: float
    device: str
    threads: int
    saved: str | None

    @property
    def reproduced(self) -> bool | None:
        """Whether the stored value came back exactly; None after other epochs."""
        return self.value == self.winner.value if self.epochs == self.winner.epochs else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "search": self.winner.search,
            "stage": self.winner.record.stage,
            "trial": self.winner.record.number,
            "epochs": self.epochs,
            "value": self.value,
            "stored_value": self.winner.value,
            "stored_epochs": self.winner.epochs,
            "reproduced": self.reproduced,
            "device": self.device,
            "threads": self.threads,
            "saved": self.saved,
        }


def format_retrained(done: Retrained, fmt: str) -> str:
    """What ``--retrain`` prints: a JSON object, or a line (and where the model went)."""
    if fmt == "json":
        return json.dumps(done.to_dict(), indent=2)
    w = done.winner
    line = (
        f"retrained trial {w.record.number} (stage {w.record.stage}) for {done.epochs} "
        f"epoch(s) on {done.device}, {done.threads} thread(s): {w.metric} = {done.value!r}"
    )
    if done.reproduced:
        line += ", the stored value exactly"
    else:
        line += f" (stored: {w.value!r} after {w.epochs} epoch(s))"
    return line + (f"\nsaved the trained model to {done.saved}" if done.saved else "")


@dataclass
class _Replay:
    """The winner's trial in the shape of the claimed slot the worker's ``_call`` reads:
    its number, params and attrs (seed, epochs), and a sink for epoch values."""

    number: int
    params: dict[str, Any]
    attrs: dict[str, Any]

    def report(self, epoch: int, value: float) -> None:
        """Nothing is written: the stored trial stays as its worker left it."""


def retrain(
    spec: StudySpec,
    winner: Winner,
    *,
    epochs: int | None = None,
    save: str | None = None,
    threads: int | None = None,
    device: str | None = None,
) -> Retrained:
    """Train the winner once more: ``epochs`` (default: the trial's), on ``device`` and
    ``threads`` (default: what the trial recorded, else ``auto`` and all cores), saving
    the model to ``save`` when given."""
    from hpsearch.engine.local_workers import threads_per_worker

    record = winner.record
    epochs = epochs or record.epochs
    threads = threads or int(record.attrs.get("threads") or threads_per_worker(1))
    device = device or str(record.attrs.get("device") or "auto")
    params = dict(record.params)
    target, before = None, None
    if save is not None:
        target = Path(save).resolve()
        if target.is_dir() or not target.parent.is_dir():
            raise UserError(f"--save {save}: give a file in an existing folder, e.g. model.pt")
        before = _stamp(target)
        params[SAVE_PATH_KEY] = str(target)
    objective = load_objective(spec.objective, spec.base_dir, source="stored spec")
    slot = _Replay(record.number, params, {**record.attrs, "epochs": epochs})
    value, attrs = checked(*call_objective(spec, objective, slot, threads=threads, device=device))
    if value is None:
        raise RetrainFailed(f"retraining trial {record.number} failed: {attrs['fail_reason']}")
    if target is not None and _stamp(target) in (None, before):
        raise RetrainFailed(
            f"--save {save}: the objective wrote nothing there; the built-in CNN saves its "
            f"model, an objective of your own must write to params[{SAVE_PATH_KEY!r}]"
        )
    return Retrained(winner, epochs, value, device, threads, str(target) if target else None)


def _stamp(path: Path) -> tuple[int, int] | None:
    """When and how big: tells whether the objective wrote the file (an old one may be
    there, and is only replaced, never deleted, in case the run fails)."""
    if not path.exists():
        return None
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size
