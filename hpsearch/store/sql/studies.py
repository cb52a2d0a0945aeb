"""Study-level rows: attrs written once or read per claim, a search's studies found and
deleted whole, and the per-stage counts a progress display polls."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optuna.storages._rdb import models
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hpsearch.store.sql.clock import as_datetime
from hpsearch.store.sql.reads import studies_of as studies_of
from hpsearch.store.sql.reads import study_attr as study_attr
from hpsearch.store.sql.rows import (
    STUDIES,
    STUDY_ATTRS,
    TRIAL_VALUES,
    TRIALS,
    USER_ATTRS,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def add_study_attr(engine: Engine, study_id: int, key: str, value: Any) -> bool:
    """Write a study user attr only if it is absent, atomically: Optuna's table has a
    unique (study_id, key), so of two writers racing one insert fails. True if written."""
    try:
        with engine.begin() as conn:
            conn.execute(
                STUDY_ATTRS.insert().values(
                    study_id=study_id, key=key, value_json=json.dumps(value)
                )
            )
    except IntegrityError:
        return False
    return True


def delete_study_attr(engine: Engine, study_id: int, key: str) -> None:
    table = STUDY_ATTRS
    with engine.begin() as conn:
        conn.execute(table.delete().where(table.c.study_id == study_id, table.c.key == key))


def delete_studies(engine: Engine, names: list[str]) -> None:
    """Delete these studies with everything in them, in one transaction: all or none, so
    that an interrupted delete never leaves half a search behind (a later stage without
    the spec, which a relaunch would silently skip). Optuna's ORM models cascade to every
    table that hangs off a study (trials, params, values, attrs, heartbeats), as its own
    ``delete_study`` does, one study per transaction."""
    study_model = models.StudyModel
    with Session(engine) as session, session.begin():
        for study in session.scalars(select(study_model).where(study_model.study_name.in_(names))):
            session.delete(study)


@dataclass(frozen=True)
class StageCounts:
    """Where one stage stands, for a progress display: slots done (a slot counts once,
    whatever its re-queued attempts), running and waiting trials, the best value so far
    (lowest and highest: the caller knows the direction) and the mean duration of the last
    finished trials (for an ETA)."""

    done: int
    running: int
    waiting: int
    lowest: float | None
    highest: float | None
    mean_duration_s: float | None


#: Finished trials an ETA averages over: recent ones, as trial length drifts in a stage.
RECENT = 50


def stage_counts(engine: Engine, search: str) -> dict[str, StageCounts]:
    """Every stage study of ``search`` (matched as a literal prefix), in a few queries."""
    trials, values, user = TRIALS, TRIAL_VALUES, USER_ATTRS
    out: dict[str, StageCounts] = {}
    with engine.connect() as conn:
        found = conn.execute(
            select(STUDIES.c.study_id, STUDIES.c.study_name).where(
                STUDIES.c.study_name.startswith(search + "/", autoescape=True)
            )
        ).all()
        for study_id, name in found:
            states: dict[Any, int] = dict(
                conn.execute(
                    select(trials.c.state, func.count())
                    .where(trials.c.study_id == study_id)
                    .group_by(trials.c.state)
                ).all()
            )
            slot = select(user.c.value_json).join(trials, trials.c.trial_id == user.c.trial_id)
            slot = slot.where(trials.c.study_id == study_id, user.c.key == "slot")
            open_slots = slot.where(trials.c.state.in_(["WAITING", "RUNNING"]))
            done = conn.execute(
                select(func.count(func.distinct(user.c.value_json)))
                .select_from(user.join(trials, trials.c.trial_id == user.c.trial_id))
                .where(
                    trials.c.study_id == study_id,
                    user.c.key == "slot",
                    trials.c.state.in_(["COMPLETE", "FAIL", "PRUNED"]),
                    user.c.value_json.not_in(open_slots),
                )
            ).scalar_one()
            low, high = conn.execute(
                select(func.min(values.c.value), func.max(values.c.value))
                .join(trials, trials.c.trial_id == values.c.trial_id)
                .where(trials.c.study_id == study_id, trials.c.state == "COMPLETE")
            ).one()
            spans = conn.execute(
                select(trials.c.datetime_start, trials.c.datetime_complete)
                .where(
                    trials.c.study_id == study_id,
                    trials.c.state.in_(["COMPLETE", "FAIL", "PRUNED"]),
                    trials.c.datetime_start.is_not(None),
                    trials.c.datetime_complete.is_not(None),
                )
                .order_by(trials.c.trial_id.desc())
                .limit(RECENT)
            ).all()
            durations = [(as_datetime(b) - as_datetime(a)).total_seconds() for a, b in spans]
            out[name.split("/", 1)[1]] = StageCounts(
                done=int(done),
                running=int(_count(states, "RUNNING")),
                waiting=int(_count(states, "WAITING")),
                lowest=low,
                highest=high,
                mean_duration_s=sum(durations) / len(durations) if durations else None,
            )
    return out


def _count(states: dict[Any, int], name: str) -> int:
    # The state column is Optuna's TrialState enum; rows may hand back the enum or its name.
    return sum(n for state, n in states.items() if getattr(state, "name", state) == name)
