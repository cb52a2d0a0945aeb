"""What tests read back from a search's database, the way optuna-dashboard reads it:
through Optuna's public API on the storage URL, not through hpsearch's store."""

from __future__ import annotations

import optuna


def stage_study(url: str, search: str, stage: str) -> optuna.Study:
    """The Optuna study of one stage (``NAME/STAGE``), as the dashboard loads it."""
    return optuna.load_study(study_name=f"{search}/{stage}", storage=url)


def study_system_attrs(study: optuna.Study) -> dict:
    """A study's system attrs (where optuna-dashboard keeps notes and figures)."""
    return study._storage.get_study_system_attrs(study._study_id)
