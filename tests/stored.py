"""What tests read back from a search's database, the way optuna-dashboard reads it:
through Optuna's API on the storage URL, not through hpsearch's store."""

from __future__ import annotations

import optuna
import sqlalchemy as sa


def stage_study(url: str, search: str, stage: str) -> optuna.Study:
    """The Optuna study of one stage (``NAME/STAGE``), as the dashboard loads it."""
    return optuna.load_study(study_name=f"{search}/{stage}", storage=url)


def study_system_attrs(url: str, name: str) -> dict:
    """A study's system attrs (where optuna-dashboard keeps notes and figures). Its id is
    read from Optuna's ``studies`` table, as Optuna keeps it private on the study."""
    storage = optuna.storages.RDBStorage(url)
    with storage.engine.connect() as conn:
        study_id = conn.execute(
            sa.text("SELECT study_id FROM studies WHERE study_name = :n"), {"n": name}
        ).scalar_one()
    return storage.get_study_system_attrs(study_id)
