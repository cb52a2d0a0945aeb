"""A trial's life in rows: claimed, finished, found stale and re-queued; and the lean reads
the worker and Optuna's pruners make of a stage's trials."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import bindparam, text

from hpsearch.store.sql.clock import utc_now_sql
from hpsearch.store.sql.reads import count_live as count_live
from hpsearch.store.sql.reads import stale_in
from hpsearch.store.sql.rows import (
    INTERMEDIATE,
    SYSTEM_ATTRS,
    TRIAL_VALUES,
    USER_ATTRS,
    VALUE,
    attrs,
    identify,
    move,
    params,
    queue_copy,
    set_attr,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    """A slot this worker now runs: what the claim read back in the same transaction.

    ``params`` is empty for a slot whose sampler fills it at run time (TPE).
    """

    trial_id: int
    number: int
    params: dict[str, Any]
    user_attrs: dict[str, Any]


def claim_slot(engine: Engine, study_id: int, *, worker: str = "") -> Claim | None:
    """Move one WAITING trial of the study to RUNNING and return it, or None.

    One write transaction does all a worker needs before it runs the trial: the claim (a
    compare-and-swap), the heartbeat row (so no claimed trial is ever without one), the
    ``worker`` user attr, and the read of its params and attrs. Every commit is a disk
    flush on the database server, and at 16 workers those flushes were the service's
    throughput limit. Slots are taken in trial-id order, so one worker runs them in the
    order prepared.
    """
    with engine.begin() as conn:
        candidates = [
            row[0]
            for row in conn.execute(
                text(
                    "SELECT trial_id FROM trials WHERE study_id = :s AND state = 'WAITING' "
                    "ORDER BY trial_id LIMIT 16"
                ),
                {"s": study_id},
            )
        ]
    for trial_id in candidates:
        with engine.begin() as conn:
            if not move(conn, trial_id, "WAITING", "RUNNING"):
                continue  # another worker won this one; try the next
            conn.execute(text("DELETE FROM trial_heartbeats WHERE trial_id = :t"), {"t": trial_id})
            conn.execute(
                text(
                    "INSERT INTO trial_heartbeats (trial_id, heartbeat) "
                    f"VALUES (:t, {utc_now_sql(conn)})"
                ),
                {"t": trial_id},
            )
            if worker:
                set_attr(conn, USER_ATTRS, trial_id, "worker", worker)
            return Claim(
                trial_id=trial_id,
                number=conn.execute(
                    text("SELECT number FROM trials WHERE trial_id = :t"), {"t": trial_id}
                ).scalar_one(),
                params=params(conn, trial_id),
                user_attrs=attrs(conn, USER_ATTRS, trial_id),
            )
    return None


def finish_trial(
    engine: Engine, trial_id: int, value: float | None, user_attrs: dict[str, Any]
) -> bool:
    """Record a finished trial in one transaction: COMPLETE with ``value`` (finite), or
    FAIL when ``value`` is None, with its user attrs.

    Optuna's ``tell`` plus one ``set_user_attr`` per attr commit 3 to 8 times. The state
    change is a compare-and-swap on RUNNING: False (nothing written) when the trial was
    failed and re-queued while this worker was away.
    """
    with engine.begin() as conn:
        if not move(conn, trial_id, "RUNNING", "FAIL" if value is None else "COMPLETE"):
            return False
        write_result(conn, trial_id, value, user_attrs)
    return True


def write_result(
    conn: Connection, trial_id: int, value: float | None, user_attrs: dict[str, Any]
) -> None:
    """A finished trial's value (none for a failure) and user attrs, in ``conn``."""
    if value is not None:
        stored, kind = VALUE.value_to_stored_repr(value)
        conn.execute(
            TRIAL_VALUES.insert().values(
                trial_id=trial_id, objective=0, value=stored, value_type=kind
            )
        )
    for key, v in user_attrs.items():
        set_attr(conn, USER_ATTRS, trial_id, key, v)


def report_value(engine: Engine, trial_id: int, step: int, value: float) -> bool:
    """Record a running trial's value after ``step`` (replacing one reported before) in one
    statement; False, writing nothing, when the trial is not RUNNING (finished elsewhere).

    Optuna's ``set_trial_intermediate_value`` reads the trial, then the step's row, then
    writes: three round trips and a commit after every epoch of every run, a third of a
    trial's database time under load (``benchmarks/wall_clock.py``, docs/parallel.md).
    """
    stored, kind = INTERMEDIATE.intermediate_value_to_stored_repr(value)
    # SQLite needs the WHERE of an INSERT ... SELECT to read its ON CONFLICT as an upsert
    sql = (
        "INSERT INTO trial_intermediate_values "
        "(trial_id, step, intermediate_value, intermediate_value_type) "
        "SELECT :t, :step, :v, :kind WHERE EXISTS "
        "(SELECT 1 FROM trials WHERE trial_id = :t AND state = 'RUNNING') "
        "ON CONFLICT (trial_id, step) DO UPDATE SET "
        "intermediate_value = excluded.intermediate_value, "
        "intermediate_value_type = excluded.intermediate_value_type"
    )
    args = {"t": trial_id, "step": step, "v": stored, "kind": kind.name}
    with engine.begin() as conn:
        return conn.execute(text(sql), args).rowcount > 0


def record_heartbeat(engine: Engine, trial_id: int) -> None:
    """Beat for a running trial with the database's clock in UTC (``clock.utc_now_sql``),
    not Optuna's ``record_heartbeat``, whose ``CURRENT_TIMESTAMP`` is the session's local
    time on PostgreSQL. A trial without a row gets one."""
    with engine.begin() as conn:
        beat = utc_now_sql(conn)
        updated = conn.execute(
            text(f"UPDATE trial_heartbeats SET heartbeat = {beat} WHERE trial_id = :t"),
            {"t": trial_id},
        ).rowcount
        if not updated:
            conn.execute(
                text(f"INSERT INTO trial_heartbeats (trial_id, heartbeat) VALUES (:t, {beat})"),
                {"t": trial_id},
            )


def stale_trials(engine: Engine, study_id: int, grace_period: float) -> list[int]:
    """RUNNING trials whose worker is presumed gone: no heartbeat for ``grace_period``, or
    no heartbeat row at all and started more than ``grace_period`` ago.

    Heartbeats are written with the database's clock in UTC and compared with it here, so
    no session's time zone enters (``clock.utc_now_sql``). A worker killed between Optuna's
    claim and its first beat leaves a trial without a heartbeat row; Optuna's stale check
    skips those, so they would stay RUNNING forever and the stage would never end.
    """
    with engine.begin() as conn:
        return stale_in(conn, study_id, grace_period)[1]


def requeue_trial(
    engine: Engine, trial_id: int, *, reason: str, max_retry: int | None = None
) -> int | None:
    """Fail a RUNNING trial and queue a copy of its slot (same params), atomically.

    Only the caller that moves the trial out of RUNNING does anything, so any number of
    workers may try at once. The copy lists the failed attempts in ``retry_history`` (as
    Optuna's ``RetryHeartbeatStaleTrialCallback`` does), which is how reports tell a
    superseded attempt from a trial that failed for good. A slot already retried
    ``max_retry`` times is failed for good with ``reason`` as its ``fail_reason``: a trial
    that kills its worker every time (out of memory, say) must not stall the search.

    Returns the copy's trial id; None if the trial was no longer RUNNING or was given up.
    """
    with engine.begin() as conn:
        if not move(conn, trial_id, "RUNNING", "FAIL"):
            return None
        study_id, number = identify(conn, trial_id)
        system = attrs(conn, SYSTEM_ATTRS, trial_id)
        if max_retry is not None and len(system.get("retry_history", [])) >= max_retry:
            set_attr(
                conn, USER_ATTRS, trial_id, "fail_reason", f"{reason}; given up after retries"
            )
            log.warning("trial %d: %s; given up after %d retries", number, reason, max_retry)
            return None
        new_id, _ = queue_copy(conn, trial_id, study_id, number, system)
        set_attr(conn, USER_ATTRS, trial_id, "fail_reason", f"{reason}; slot re-queued")
    log.warning("trial %d: %s; slot re-queued", number, reason)
    return new_id


def count_open(engine: Engine, study_id: int) -> int:
    """Trials of the study still WAITING or RUNNING: zero means the stage is finished."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT COUNT(*) FROM trials WHERE study_id = :s "
                    "AND state IN ('WAITING', 'RUNNING')"
                ),
                {"s": study_id},
            ).scalar_one()
        )


def count_trials(engine: Engine, study_id: int) -> int:
    """Every trial of the study, in any state: it only grows, so an unchanged count means
    nothing was added (an extension adds slots, a retry fresh copies of failed ones)."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT COUNT(*) FROM trials WHERE study_id = :s"), {"s": study_id}
            ).scalar_one()
        )


#: The states of the trials a pruner may compare with: a WAITING slot has reported nothing.
PRUNING_STATES = ("RUNNING", "COMPLETE", "PRUNED")


def pruning_trials(
    engine: Engine,
    study_id: int,
    states: tuple[str, ...] = PRUNING_STATES,
    *,
    curves: bool = True,
    trial_id: int | None = None,
) -> list[FrozenTrial]:
    """The study's trials in ``states`` (state names; ``trial_id``: that one alone, if
    in them) as FrozenTrials holding what Optuna's pruners read: state, curve
    (intermediate values; left empty without ``curves``) and the rung values successive
    halving records in system attrs; no params or user attrs. Two or three queries; see
    ``store.slot.PruningStudy`` for why not ``study.get_trials``."""
    where = "t.study_id = :s AND t.state IN :states" + (
        " AND t.trial_id = :t" if trial_id is not None else ""
    )
    args = {"s": study_id, "states": tuple(states), "t": trial_id}

    def query(sql: str) -> Any:  # rows of the columns that ``sql`` names
        return conn.execute(text(sql).bindparams(bindparam("states", expanding=True)), args)

    with engine.connect() as conn:
        rows = query(f"SELECT t.trial_id, t.number, t.state FROM trials t WHERE {where}").all()
        values: dict[int, dict[int, float]] = {row[0]: {} for row in rows}
        rungs: dict[int, dict[str, Any]] = {row[0]: {} for row in rows}
        # A trial whose state changed since the first query (claimed, finished) is left as
        # that query found it: each statement reads the latest committed rows.
        if curves:
            for tid, step, value, kind in query(
                "SELECT v.trial_id, v.step, v.intermediate_value, v.intermediate_value_type "
                "FROM trial_intermediate_values v JOIN trials t ON t.trial_id = v.trial_id "
                f"WHERE {where}"
            ):
                if tid in values:
                    kind = INTERMEDIATE.TrialIntermediateValueType[kind]
                    values[tid][step] = INTERMEDIATE.stored_repr_to_intermediate_value(value, kind)
        for tid, key, value in query(
            "SELECT a.trial_id, a.key, a.value_json FROM trial_system_attributes a "
            f"JOIN trials t ON t.trial_id = a.trial_id WHERE {where} "
            "AND a.key LIKE 'completed_rung_%'"
        ):
            if tid in rungs:
                rungs[tid][key] = json.loads(value)
    return [
        FrozenTrial(
            number, TrialState[state], None, None, None, {}, {}, {}, rungs[tid], values[tid], tid
        )
        for tid, number, state in sorted(rows, key=lambda r: r[1])
    ]
