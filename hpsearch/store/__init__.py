"""The storage boundary: every read and write of a search's database goes through here.
May import: core, training, objectives.

The database is the only source of truth: a search's spec, each stage's space and the
region that produced it live in stage studies' user attrs, so any worker on any machine
(and optuna-dashboard) sees the whole search from the storage URL alone.

The worker loop, stage preparation, notes and reports talk to :class:`SearchStore` in the
words of the design (register, stage, prepare, claim, record, recover, note) and never to
SQLAlchemy or to Optuna's internals, which are used only in this package:

- ``face``: :class:`SearchStore`, joined from one module per concern: ``searches``
  (searches and specs), ``stages`` (stage studies, leases, queued slots), ``trials``
  (claims, counts), ``liveness`` (heartbeats, recovery), ``notes`` (dashboard notes), on
  ``reading`` (a search read back: specs, records, who is on it) and ``opening`` (opening
  a database; the policy every call runs under);
- ``reading``: :class:`SearchReader`, the reads alone, in plain SQL with no Optuna
  imported: what the commands that only look open (``status``, ``best``, ``list``,
  ``report``, a relaunch's checks);
- ``slot``: the :class:`Slot` a worker runs;
- ``model``: the study attrs' names and the handles the store hands out;
- ``sql``: the raw SQL of claims, re-queues, fenced writes, leases and budgets, the only
  SQL in hpsearch;
- ``policy``: the one retry policy (which errors are transient, which are permanent);
- ``urls``: storage URLs checked and masked before anything connects.

Every public method of the store runs under the retry policy: a transient error (a
dropped connection, a restart, a lock) is retried with backoff; a permanent one fails at
once with one line naming the fix.

This package imports Optuna and SQLAlchemy only when a name that needs them is first
used (``SearchStore``, ``Slot``...; ``SearchReader`` imports SQLAlchemy alone): ``urls`` and ``policy`` are what the command line
imports before it knows it will open a database, and they must stay instant.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hpsearch.store.model import (
    ATTR_BASELINE,
    ATTR_EPOCHS,
    ATTR_HISTORY,
    ATTR_NOTE_MARK,
    ATTR_POINTS,
    ATTR_PROMOTED,
    ATTR_READY,
    ATTR_REGION,
    ATTR_SAMPLER,
    ATTR_SEED,
    ATTR_SPACE,
    ATTR_SPEC,
    ATTR_STAGE,
    ATTR_STAGE_INDEX,
    ATTR_STOPPED,
    NOTE_VERSION,
    NewSlot,
    NoteState,
    Stage,
    StopEarly,
    now_iso,
    stage_study_name,
)
from hpsearch.store.policy import StorageBroken, StorageUnusable

if TYPE_CHECKING:
    from hpsearch.store.face import SearchStore
    from hpsearch.store.opening import (
        IDLE_IN_TRANSACTION_MS,
        LOCK_TIMEOUT_MS,
        WORKER_WAIT_S,
        engine_kwargs,
    )
    from hpsearch.store.reading import SearchReader
    from hpsearch.store.slot import PruningStudy, Slot
    from hpsearch.store.sql.leases import LeaseLost, worker_id
    from hpsearch.store.sql.studies import StageCounts
    from hpsearch.store.stages import StoreLease

#: The names that load Optuna or SQLAlchemy, and the module each comes from.
_HEAVY = {
    "SearchStore": "face",
    "SearchReader": "reading",
    "IDLE_IN_TRANSACTION_MS": "opening",
    "LOCK_TIMEOUT_MS": "opening",
    "WORKER_WAIT_S": "opening",
    "engine_kwargs": "opening",
    "PruningStudy": "slot",
    "Slot": "slot",
    "LeaseLost": "sql.leases",
    "worker_id": "sql.leases",
    "StageCounts": "sql.studies",
    "StoreLease": "stages",
}


def __getattr__(name: str) -> Any:
    """A heavy name, imported on first use (PEP 562)."""
    if name not in _HEAVY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HEAVY[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "ATTR_BASELINE",
    "ATTR_EPOCHS",
    "ATTR_HISTORY",
    "ATTR_NOTE_MARK",
    "ATTR_POINTS",
    "ATTR_PROMOTED",
    "ATTR_READY",
    "ATTR_REGION",
    "ATTR_SAMPLER",
    "ATTR_SEED",
    "ATTR_SPACE",
    "ATTR_SPEC",
    "ATTR_STAGE",
    "ATTR_STAGE_INDEX",
    "ATTR_STOPPED",
    "NOTE_VERSION",
    "NewSlot",
    "NoteState",
    "Stage",
    "StopEarly",
    "StorageBroken",
    "StorageUnusable",
    "now_iso",
    "stage_study_name",
    "SearchStore",
    "SearchReader",
    "IDLE_IN_TRANSACTION_MS",
    "LOCK_TIMEOUT_MS",
    "WORKER_WAIT_S",
    "engine_kwargs",
    "PruningStudy",
    "Slot",
    "LeaseLost",
    "worker_id",
    "StageCounts",
    "StoreLease",
]
