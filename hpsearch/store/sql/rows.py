"""The statements the coordination transactions share: Optuna's tables, a trial's state
compare-and-swap, its attrs and params, and inserting WAITING trials."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from optuna.distributions import distribution_to_json, json_to_distribution
from optuna.storages._rdb import models
from optuna.trial import TrialState
from sqlalchemy import Table, func, select, text

from hpsearch.store.sql.clock import now

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from hpsearch.core.space import SearchSpace
    from hpsearch.store.model import NewSlot


def _table(model: type[Any]) -> Table:
    return model.__table__


# Optuna's own table definitions (pinned with Optuna 5), so that the rows written here are
# ordinary trials to optuna.load_study and the dashboard.
STUDIES = _table(models.StudyModel)
STUDY_ATTRS = _table(models.StudyUserAttributeModel)
TRIALS = _table(models.TrialModel)
TRIAL_VALUES = _table(models.TrialValueModel)
TRIAL_PARAMS = _table(models.TrialParamModel)
USER_ATTRS = _table(models.TrialUserAttributeModel)
SYSTEM_ATTRS = _table(models.TrialSystemAttributeModel)
#: How Optuna stores a trial's value and an intermediate value (with a type column for
#: the infinities and NaN that a float column cannot hold).
VALUE = models.TrialValueModel
INTERMEDIATE = models.TrialIntermediateValueModel

#: The user attrs that identify a slot: a re-queued copy carries these and nothing else
#: (the dead attempt's worker, timings and diagnostics stay with the dead attempt).
SLOT_ATTRS = ("slot", "stage", "epochs", "seed")


def move(conn: Connection, trial_id: int, old: str, new: str) -> bool:
    """Compare-and-swap a trial's state, stamping its start (RUNNING) or completion time:
    one ``UPDATE ... WHERE state = old``, atomic on every backend. True if this caller won."""
    stamp = "datetime_start" if new == "RUNNING" else "datetime_complete"
    moved = conn.execute(
        text(
            f"UPDATE trials SET state = :new, {stamp} = :now WHERE trial_id = :t AND state = :old"
        ),
        {"t": trial_id, "old": old, "new": new, "now": now()},
    ).rowcount
    return bool(moved == 1)


def attrs(conn: Connection, table: Table, trial_id: int) -> dict[str, Any]:
    """A trial's user or system attrs (``table`` says which)."""
    rows = conn.execute(
        select(table.c.key, table.c.value_json).where(table.c.trial_id == trial_id)
    )
    return {key: json.loads(value) for key, value in rows}


def set_attr(conn: Connection, table: Table, trial_id: int, key: str, value: Any) -> None:
    conn.execute(table.delete().where(table.c.trial_id == trial_id, table.c.key == key))
    conn.execute(table.insert().values(trial_id=trial_id, key=key, value_json=json.dumps(value)))


def params(conn: Connection, trial_id: int) -> dict[str, Any]:
    """A trial's params in their external form, in the order they were stored."""
    rows = conn.execute(
        text(
            "SELECT param_name, param_value, distribution_json FROM trial_params "
            "WHERE trial_id = :t ORDER BY param_id"
        ),
        {"t": trial_id},
    )
    return {name: json_to_distribution(dist).to_external_repr(value) for name, value, dist in rows}


def identify(conn: Connection, trial_id: int) -> tuple[int, int]:
    """A trial's study id and number."""
    row = conn.execute(
        select(TRIALS.c.study_id, TRIALS.c.number).where(TRIALS.c.trial_id == trial_id)
    ).one()
    return row[0], row[1]


def lock_study(conn: Connection, study_id: int) -> int:
    """Lock the study row as Optuna locks it before numbering a new trial (so that
    concurrent numbers cannot clash on PostgreSQL; SQLite already holds its single write
    lock here), and return how many trials the study has: the next trial's number."""
    conn.execute(
        select(STUDIES.c.study_id).where(STUDIES.c.study_id == study_id).with_for_update()
    )
    return int(
        conn.execute(
            select(func.count()).select_from(TRIALS).where(TRIALS.c.study_id == study_id)
        ).scalar_one()
    )


def slot_numbers(conn: Connection, study_id: int, *, after: int = 0) -> set[int]:
    """The slot numbers the study's trials carry (a re-queued slot's attempts share one);
    ``after``: only those of trials with a greater trial id (the ones added since)."""
    rows = conn.execute(
        text(
            "SELECT a.value_json FROM trial_user_attributes a "
            "JOIN trials t ON t.trial_id = a.trial_id "
            "WHERE t.study_id = :s AND a.key = 'slot' AND t.trial_id > :after"
        ),
        {"s": study_id, "after": after},
    )
    return {int(json.loads(value)) for (value,) in rows}


def last_trial_id(conn: Connection, study_id: int) -> int:
    """The study's greatest trial id (0 when it has none)."""
    return int(
        conn.execute(
            select(func.coalesce(func.max(TRIALS.c.trial_id), 0)).where(
                TRIALS.c.study_id == study_id
            )
        ).scalar_one()
    )


def insert_slots(
    conn: Connection, study_id: int, number: int, slots: list[NewSlot], space: SearchSpace
) -> None:
    """Insert WAITING trials for ``slots``, numbered from ``number`` (see lock_study), their
    params stored with ``space``'s distributions.

    One INSERT per table for the whole batch: on SQLite an executemany (the trials'
    RETURNING in parameter order gives each slot its trial id), on PostgreSQL an
    ``INSERT ... SELECT FROM unnest(arrays)``, as psycopg's executemany sends a statement
    per row (about 1,000 slots/s, against 10,000 wanted). A statement per row kept a 100-slot
    transaction open for 0.3 s: with connections dropped every 0.25 s, every attempt was
    rolled back and the stage was never prepared.
    """
    numbers = list(range(number, number + len(slots)))
    ids: Any
    if conn.dialect.name == "postgresql":  # one statement; its ids mapped by number
        found: dict[int, int] = dict(
            conn.execute(
                text(
                    "INSERT INTO trials (number, study_id, state) "
                    "SELECT n, :s, 'WAITING' FROM unnest(CAST(:numbers AS integer[])) AS n "
                    "RETURNING number, trial_id"
                ),
                {"s": study_id, "numbers": numbers},
            ).all()
        )
        ids = [found[n] for n in numbers]
    else:
        rows = [{"study_id": study_id, "number": n, "state": TrialState.WAITING} for n in numbers]
        ids = conn.execute(
            TRIALS.insert().returning(TRIALS.c.trial_id, sort_by_parameter_order=True), rows
        ).scalars()
    user, stored = [], []
    distributions: dict[str, tuple[Any, str]] = {}  # one per param, not one per slot
    for trial_id, s in zip(ids, slots, strict=True):
        user += [
            {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
            for key, value in s.user_attrs.items()
        ]
        for name, value in s.point.items():
            if name not in distributions:
                distribution = space[name].to_distribution()
                distributions[name] = (distribution, distribution_to_json(distribution))
            distribution, as_json = distributions[name]
            stored.append(
                {
                    "trial_id": trial_id,
                    "param_name": name,
                    "param_value": distribution.to_internal_repr(value),
                    "distribution_json": as_json,
                }
            )
    for table, values in ((USER_ATTRS, user), (TRIAL_PARAMS, stored)):
        if conn.dialect.name != "postgresql":
            if values:
                conn.execute(table.insert(), values)  # SQLite's executemany is fast
            continue
        # psycopg's executemany sends a statement per row (1,200 slots/s), and arrays
        # for unnest() are dumped element by element in Python (half of a 200,000-slot
        # enqueue): the rows go as one JSON text, which json.dumps writes in C and the
        # server expands (jsonb_to_recordset), a single round trip. A float's repr
        # round-trips through jsonb's decimal exactly.
        if values:
            columns = list(values[0])
            kinds = {"trial_id": "integer", "param_value": "double precision"}
            record = ", ".join(f"{c} {kinds.get(c, 'text')}" for c in columns)
            conn.execute(
                text(
                    f"INSERT INTO {table.name} ({', '.join(columns)}) "
                    f"SELECT {', '.join(columns)} "
                    f"FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({record})"
                ),
                {"rows": json.dumps(values)},
            )


def queue_copy(
    conn: Connection, trial_id: int, study_id: int, number: int, system: dict[str, Any]
) -> tuple[int, int]:
    """Insert a WAITING copy of a failed trial's slot, inside the caller's transaction: its
    params (in their order), its slot attrs, and its system attrs with the failed attempt
    added to ``retry_history``, which marks that attempt superseded. Returns the copy's id
    and number."""
    user = {k: v for k, v in attrs(conn, USER_ATTRS, trial_id).items() if k in SLOT_ATTRS}
    history = [*system.get("retry_history", []), number]
    system = {
        **system,
        "failed_trial": system.get("failed_trial", number),
        "retry_history": history,
    }
    new_number = lock_study(conn, study_id)
    new_id = conn.execute(
        TRIALS.insert()
        .values(study_id=study_id, number=new_number, state=TrialState.WAITING)
        .returning(TRIALS.c.trial_id)
    ).scalar_one()
    for table, values in ((USER_ATTRS, user), (SYSTEM_ATTRS, system)):
        for key, value in values.items():
            set_attr(conn, table, new_id, key, value)
    conn.execute(
        text(
            "INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json) "
            "SELECT :new, param_name, param_value, distribution_json FROM trial_params "
            "WHERE trial_id = :t ORDER BY param_id"  # params keep their order
        ),
        {"new": new_id, "t": trial_id},
    )
    return int(new_id), new_number
