"""Reads of a search's rows in plain SQL on SQLAlchemy's core, without Optuna: the studies
and their attrs, a stage's trials as records, the trials and workers live on a search.

What a command that only looks needs (``status``, ``best``, ``list``, ``report``, a
relaunch's checks before it is refused): importing Optuna, and opening its storage
(which reads Optuna's alembic revision through alembic, with every SQL dialect it
knows), cost about a second of each such command; these reads name Optuna's tables and
columns (pinned with Optuna 5, as ``rows`` does) and nothing of Optuna's code. The
writers (``SearchStore``) read through these too, so that there is one way to read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, column, select, table, text

from hpsearch.core.records import TrialRecord
from hpsearch.store.sql.clock import as_datetime, now, utc_now_sql

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

#: Optuna's ``studies`` table, as much of it as is named here and by the worker rows.
STUDIES = table("studies", column("study_id"), column("study_name"))
#: Optuna's value types for the values a float column cannot hold (``TrialValueModel``,
#: ``TrialIntermediateValueModel``).
SPECIAL = {"INF_POS": math.inf, "INF_NEG": -math.inf, "NAN": math.nan}
#: The distributions whose values Optuna hands out as ints (the legacy names included).
INT_DISTRIBUTIONS = {"IntDistribution", "IntUniformDistribution", "IntLogUniformDistribution"}


@dataclass(frozen=True)
class StudyRow:
    """A study as the searches are found in the storage: its name and user attrs."""

    study_id: int
    study_name: str
    user_attrs: dict[str, Any] = field(default_factory=dict)


def studies(engine: Engine) -> list[StudyRow]:
    """Every study with its user attrs, in the order they were created: two queries."""
    with engine.connect() as conn:
        names = conn.execute(
            text("SELECT study_id, study_name FROM studies ORDER BY study_id")
        ).all()
        attrs = conn.execute(
            text(
                "SELECT study_id, key, value_json FROM study_user_attributes "
                "ORDER BY study_user_attribute_id"
            )
        ).all()
    found = {int(i): StudyRow(int(i), name) for i, name in names}
    for study_id, key, value in attrs:
        if study_id in found:
            found[study_id].user_attrs[key] = json.loads(value)
    return list(found.values())


def study_id(engine: Engine, name: str) -> int | None:
    """The id of the study named ``name``, or None if there is none."""
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT study_id FROM studies WHERE study_name = :n"), {"n": name}
        ).scalar()
    return None if found is None else int(found)


def study_attrs(engine: Engine, study_id: int) -> dict[str, Any]:
    """A study's user attrs."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT key, value_json FROM study_user_attributes WHERE study_id = :s "
                "ORDER BY study_user_attribute_id"
            ),
            {"s": study_id},
        ).all()
    return {key: json.loads(value) for key, value in rows}


def study_attr(engine: Engine, study_id: int, key: str) -> Any:
    """One study user attr (None if absent): a cheap read for a check made per claim."""
    with engine.connect() as conn:
        value = conn.execute(
            text("SELECT value_json FROM study_user_attributes WHERE study_id = :s AND key = :k"),
            {"s": study_id, "k": key},
        ).scalar()
    return None if value is None else json.loads(value)


def studies_of(engine: Engine, search: str) -> dict[str, int]:
    """Every study of ``search`` (its stages and compare baselines: ``NAME/...``), name ->
    id. The name is matched as a literal prefix (no LIKE wildcards)."""
    query = select(STUDIES.c.study_name, STUDIES.c.study_id).where(
        STUDIES.c.study_name.startswith(search + "/", autoescape=True)
    )
    with engine.connect() as conn:
        return {name: int(study_id) for name, study_id in conn.execute(query)}


# -- a stage's trials ---------------------------------------------------------------------


def trial_ids(engine: Engine, study_id: int) -> list[int]:
    """The study's trial ids, in order."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                text("SELECT trial_id FROM trials WHERE study_id = :s ORDER BY trial_id"),
                {"s": study_id},
            ).scalars()
        )


def trial_records(
    engine: Engine, ids: list[int], stage: str
) -> tuple[list[TrialRecord], set[int]]:
    """The trials ``ids`` as records of stage ``stage``, in id order, and the numbers of
    the failed attempts they name as re-queued (``retry_history``): six queries, each a
    table of Optuna's, whatever the number of trials (``SearchReader.records`` batches)."""

    def rows(sql: str) -> Sequence[Any]:
        query = text(sql).bindparams(bindparam("ids", expanding=True))
        return conn.execute(query, {"ids": ids}).all()

    with engine.connect() as conn:
        trials = rows(
            "SELECT trial_id, number, state, datetime_start, datetime_complete FROM trials "
            "WHERE trial_id IN :ids ORDER BY trial_id"
        )
        values = rows(
            "SELECT trial_id, value, value_type FROM trial_values "
            "WHERE trial_id IN :ids AND objective = 0"
        )
        params = rows(
            "SELECT trial_id, param_name, param_value, distribution_json FROM trial_params "
            "WHERE trial_id IN :ids ORDER BY param_id"
        )
        user = rows(
            "SELECT trial_id, key, value_json FROM trial_user_attributes "
            "WHERE trial_id IN :ids ORDER BY trial_user_attribute_id"
        )
        system = rows(
            "SELECT trial_id, key, value_json FROM trial_system_attributes "
            "WHERE trial_id IN :ids AND key IN ('fixed_params', 'retry_history')"
        )
        steps = rows(
            "SELECT trial_id, step, intermediate_value, intermediate_value_type "
            "FROM trial_intermediate_values WHERE trial_id IN :ids "
            "ORDER BY trial_intermediate_value_id"
        )
    value = {t: SPECIAL.get(kind, v) for t, v, kind in values}
    by_trial: dict[str, dict[int, dict[Any, Any]]] = {
        k: {t[0]: {} for t in trials} for k in ("params", "user", "system", "steps")
    }
    for t, name, v, dist in params:
        by_trial["params"][t][name] = external(v, dist)
    for t, key, v in user:
        by_trial["user"][t][key] = json.loads(v)
    for t, key, v in system:
        by_trial["system"][t][key] = json.loads(v)
    for t, step, v, kind in steps:
        by_trial["steps"][t][step] = SPECIAL.get(kind, v)
    records, retried = [], set()
    for t, number, state, start, complete in trials:
        user_attrs, system_attrs = by_trial["user"][t], by_trial["system"][t]
        retried.update(system_attrs.get("retry_history", []))
        duration = None
        if start is not None and complete is not None:
            duration = (as_datetime(complete) - as_datetime(start)).total_seconds()
        records.append(
            TrialRecord(
                number=number,
                stage=stage,
                state=state,
                params=by_trial["params"][t] or dict(system_attrs.get("fixed_params", {})),
                value=value.get(t) if state == "COMPLETE" else None,
                attrs=user_attrs,
                intermediate=by_trial["steps"][t],
                slot=user_attrs.get("slot"),
                epochs=int(user_attrs.get("epochs", 0)),
                duration_s=duration,
            )
        )
    return records, retried


def external(value: float, distribution: str) -> Any:
    """A parameter's stored value as the objective was given it: Optuna's
    ``json_to_distribution(distribution).to_external_repr(value)``, for the distributions
    Optuna 5 reads (its full form and its abbreviated one)."""
    data = json.loads(distribution)
    if "name" in data:
        kind, attributes = data["name"], data["attributes"]
        if kind == "CategoricalDistribution":
            return attributes["choices"][int(value)]
        return int(value) if kind in INT_DISTRIBUTIONS else value
    if data["type"] == "categorical":
        return data["choices"][int(value)]
    return int(value) if data["type"] == "int" else value


# -- heartbeats ---------------------------------------------------------------------------


def stale_in(conn: Connection, study_id: int, grace_period: float) -> tuple[set[int], list[int]]:
    """The study's RUNNING trials, and those of them that are stale: no heartbeat for
    ``grace_period``, or no heartbeat row at all and started more than ``grace_period``
    ago (``claims.stale_trials`` says why both)."""
    grace = timedelta(seconds=grace_period)
    db_now = as_datetime(conn.execute(text(f"SELECT {utc_now_sql(conn)}")).scalar())
    rows = conn.execute(
        text(
            "SELECT t.trial_id, t.datetime_start, h.heartbeat FROM trials t "
            "LEFT JOIN trial_heartbeats h ON h.trial_id = t.trial_id "
            "WHERE t.study_id = :s AND t.state = 'RUNNING'"
        ),
        {"s": study_id},
    ).all()
    cutoff = now() - grace  # datetime_start: the claimer's clock, as Optuna writes it
    stale = []
    for trial_id, started, beat in rows:
        if beat is not None:
            if db_now - as_datetime(beat) > grace:
                stale.append(trial_id)
        elif started is not None and as_datetime(started) < cutoff:
            stale.append(trial_id)
    return {row[0] for row in rows}, stale


def count_live(engine: Engine, study_id: int, grace_period: float) -> int:
    """RUNNING trials of the study whose worker is presumed alive: the ones
    ``claims.stale_trials`` does not name (one definition of a fresh heartbeat)."""
    with engine.connect() as conn:
        return live_in(conn, study_id, grace_period)


def live_in(conn: Connection, study_id: int, grace_period: float) -> int:
    """:func:`count_live` inside the caller's transaction."""
    running, stale = stale_in(conn, study_id, grace_period)
    return len(running - set(stale))
