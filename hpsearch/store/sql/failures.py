"""Failures in rows: what fail fast counts, and failed trials re-queued for a retry.

A failed trial's slot is re-queued as a fresh WAITING copy (same params and slot attrs),
the failed attempt kept as history, exactly as a heartbeat re-queue does: the copy's
``retry_history`` lists it, which is what marks it superseded everywhere.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from hpsearch.core.failures import Outcomes
from hpsearch.store.sql.rows import SYSTEM_ATTRS, USER_ATTRS, attrs, identify, queue_copy, set_attr

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

#: The user attr set on a failed trial whose slot :func:`requeue_failed_trial` re-queued:
#: the copy's number. Optuna's unique (trial_id, key) makes writing it the fence that lets
#: any number of workers (and ``hpsearch retry``) re-queue the same failures at once.
REQUEUED_AS = "requeued_as"


def _superseded(conn: Connection, study_id: int) -> set[int]:
    """Numbers of the study's trials whose slot was re-queued (all copies' histories)."""
    rows = conn.execute(
        text(
            "SELECT a.value_json FROM trial_system_attributes a "
            "JOIN trials t ON t.trial_id = a.trial_id "
            "WHERE t.study_id = :s AND a.key = 'retry_history'"
        ),
        {"s": study_id},
    )
    return {int(n) for (value,) in rows for n in json.loads(value)}


def count_outcomes(engine: Engine, study_id: int, window: int) -> Outcomes:
    """What fail-fast decides from: the study's COMPLETE trials, its failed trials that
    count (not superseded), and the last ``window`` counted finished trials by completion
    time, newest first (True: failed). Bounded: only the newest rows are read in order."""
    with engine.connect() as conn:
        gone = _superseded(conn, study_id)
        succeeded = conn.execute(
            text("SELECT COUNT(*) FROM trials WHERE study_id = :s AND state = 'COMPLETE'"),
            {"s": study_id},
        ).scalar_one()
        failed = conn.execute(
            text("SELECT number FROM trials WHERE study_id = :s AND state = 'FAIL'"),
            {"s": study_id},
        )
        n_failed = sum(1 for (number,) in failed if number not in gone)
        newest = conn.execute(
            text(
                "SELECT number, state FROM trials WHERE study_id = :s "
                "AND state IN ('COMPLETE', 'FAIL') "
                "ORDER BY datetime_complete DESC, trial_id DESC LIMIT :n"
            ),
            {"s": study_id, "n": window + len(gone)},
        )
        recent = [state == "FAIL" for number, state in newest if number not in gone]
    return Outcomes(int(succeeded), n_failed, tuple(recent[:window]))


def failed_trials(engine: Engine, study_id: int) -> list[int]:
    """Ids of the study's failed trials that count (not superseded), in trial order."""
    with engine.connect() as conn:
        gone = _superseded(conn, study_id)
        rows = conn.execute(
            text(
                "SELECT trial_id, number FROM trials WHERE study_id = :s AND state = 'FAIL' "
                "ORDER BY trial_id"
            ),
            {"s": study_id},
        )
        return [trial_id for trial_id, number in rows if number not in gone]


def requeue_failed_trial(engine: Engine, trial_id: int) -> tuple[int, int] | None:
    """Queue a fresh copy of a FAIL trial's slot, atomically; the failed trial stays as
    history (superseded by the copy). Returns (failed number, copy number), or None if
    the trial is not FAIL or was re-queued already.

    One transaction that starts with its fence, a write (so that SQLite takes its write
    lock before reading anything): ``requeued_as`` inserted on the failed trial if it is
    FAIL. A second caller's insert fails on the unique key (on PostgreSQL it waits for
    the first to commit), which rolls its whole transaction back: exactly one copy.
    """
    try:
        with engine.begin() as conn:
            fenced = conn.execute(
                text(
                    "INSERT INTO trial_user_attributes (trial_id, key, value_json) "
                    "SELECT trial_id, :k, 'null' FROM trials "
                    "WHERE trial_id = :t AND state = 'FAIL'"
                ),
                {"k": REQUEUED_AS, "t": trial_id},
            ).rowcount
            if fenced != 1:
                return None
            study_id, number = identify(conn, trial_id)
            system = attrs(conn, SYSTEM_ATTRS, trial_id)
            _, copy = queue_copy(conn, trial_id, study_id, number, system)
            set_attr(conn, USER_ATTRS, trial_id, REQUEUED_AS, copy)
    except IntegrityError:
        return None
    return number, copy
