"""The epoch budget of a stage that stops runs early: the epochs a stopped run did not
spend buy more runs.

A stage's budget is ``trials * epochs``. Slots are appended only inside a transaction that
first takes the study's write lock, so workers recording stops at once append one after
the other, each counting what the last one appended: never a slot too many.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from hpsearch.store.sql.claims import write_result
from hpsearch.store.sql.rows import STUDIES, identify, insert_slots, lock_study, move, slot_numbers

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from hpsearch.store.model import StopEarly

#: The user attr a stopped trial carries: the epochs it ran before it was stopped.
EPOCHS_RUN = "epochs_run"


def finish_stopped(
    engine: Engine,
    trial_id: int,
    value: float | None,
    user_attrs: dict[str, Any],
    stop_early: StopEarly,
) -> int | None:
    """Record a trial stopped early as PRUNED (with ``value``, its last reported value,
    as Optuna records a pruned trial, and ``user_attrs`` with :data:`EPOCHS_RUN`), and
    append the slots the epochs it saved buy, in one transaction. Returns how many slots
    were appended; None (nothing written) when the trial was re-queued meanwhile.

    The state change comes first: a write, so that SQLite holds its write lock before the
    budget is read, and the same lock order (trial, then study) as a heartbeat re-queue.
    """
    with engine.begin() as conn:
        if not move(conn, trial_id, "RUNNING", "PRUNED"):
            return None
        write_result(conn, trial_id, value, user_attrs)
        study_id, _ = identify(conn, trial_id)
        return _append_bought(conn, study_id, stop_early)


def top_up(engine: Engine, study_id: int, stop_early: StopEarly) -> int:
    """Append the slots the stage's unspent epochs buy (see :func:`finish_stopped`), on
    its own: what a worker does before it leaves a stage, so that budget left by any path
    (a stage given more trials by an edit, say) is still spent. How many were appended."""
    with engine.begin() as conn:
        # A write that changes nothing, for its lock: SQLite's write lock before the
        # reads (a SELECT there takes none), the study row's lock on PostgreSQL.
        conn.execute(
            STUDIES.update()
            .where(STUDIES.c.study_id == study_id)
            .values(study_name=STUDIES.c.study_name)
        )
        return _append_bought(conn, study_id, stop_early)


def committed_epochs(conn: Connection, study_id: int, epochs: int) -> tuple[int, int]:
    """Epochs the stage's slots are spending or have spent, and the next slot number.

    A slot counts ``epochs`` (waiting, running, complete, failed: a failed slot is
    re-queued by a retry, at full length), except a stopped one, which counts the epochs
    it ran. A slot re-queued after a lost worker is one slot however many attempts it had.
    """
    numbers = slot_numbers(conn, study_id)
    saved = conn.execute(
        text(
            "SELECT a.value_json FROM trial_user_attributes a "
            "JOIN trials t ON t.trial_id = a.trial_id "
            "WHERE t.study_id = :s AND t.state = 'PRUNED' AND a.key = :k"
        ),
        {"s": study_id, "k": EPOCHS_RUN},
    )
    unspent = sum(max(0, epochs - int(json.loads(v))) for (v,) in saved)
    return len(numbers) * epochs - unspent, (max(numbers) + 1 if numbers else 0)


def _append_bought(conn: Connection, study_id: int, stop_early: StopEarly) -> int:
    """Append the slots the unspent epochs buy, in the caller's locked transaction."""
    # The study row's lock before the count: on PostgreSQL a second worker recording a
    # stop waits here and then reads what the first appended (read committed).
    number = lock_study(conn, study_id)
    spent, first = committed_epochs(conn, study_id, stop_early.epochs)
    n = max(0, (stop_early.budget - spent) // stop_early.epochs)
    if n:
        insert_slots(conn, study_id, number, stop_early.more(first, n), stop_early.space)
    return n
