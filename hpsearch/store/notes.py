"""Stage notes for optuna-dashboard: whose a note is, and a note saved with its figure and
marked as hpsearch's, so that a person's edit is never overwritten."""

from __future__ import annotations

from typing import Any

from hpsearch.store.model import (
    ATTR_NOTE_MARK,
    NOTE_CHUNK,
    NOTE_PREFIX,
    NOTE_VERSION,
    PLOT_DATA_PREFIX,
    NoteState,
    Stage,
)
from hpsearch.store.opening import StoreBase
from hpsearch.store.sql.claims import count_trials


class Notes(StoreBase):
    """The markdown note (and figure) on each stage study, which the dashboard shows."""

    def trial_count(self, stage: Stage) -> int:
        """Trials of the stage in any state (``sql.claims.count_trials``): one query."""
        return self._sql("count trials", count_trials, stage.study_id)

    def note_state(self, stage: Stage) -> NoteState:
        """Whose the stage's note is and what it was drawn from (see :class:`NoteState`)."""
        attrs = self._retry(
            lambda: self._rdb.get_study_system_attrs(stage.study_id), "read note state"
        )
        mark = attrs.get(ATTR_NOTE_MARK) or {}
        return NoteState(int(attrs.get(NOTE_VERSION, 0)), mark.get("version"), mark.get("trials"))

    def save_note(
        self, stage: Stage, body: str, *, trials: int, figure: Any = None, figure_id: str = ""
    ) -> None:
        """The stage's markdown note drawn from its ``trials`` trials, and a plotly figure
        saved first (so that a writer dying in between leaves no note, and the next writer
        writes both again). The note's version is marked as hpsearch's, so that a later
        draw knows it may replace it and a person's edit (a newer version) is kept. The
        mark follows the note (optuna-dashboard saves a note in several writes, none of
        them ours to join): a writer killed between the two leaves a right note that
        counts as a person's, so it is kept, and not redrawn after a later extension."""
        if figure is not None:
            prefix = f"{PLOT_DATA_PREFIX}{figure_id}:"
            self._retry(
                lambda: self._save_chunks(stage.study_id, prefix, figure.to_json()), "save figure"
            )

        def note() -> None:
            attrs = self._rdb.get_study_system_attrs(stage.study_id)
            version = int(attrs.get(NOTE_VERSION, 0)) + 1
            self._rdb.set_study_system_attr(stage.study_id, NOTE_VERSION, version)
            self._save_chunks(stage.study_id, NOTE_PREFIX, body)

        self._retry(note, "save note")
        version = self.note_state(stage).version
        mark = {"version": version, "trials": trials}
        self._retry(
            lambda: self._rdb.set_study_system_attr(stage.study_id, ATTR_NOTE_MARK, mark),
            "mark note",
        )

    def _save_chunks(self, study_id: int, prefix: str, text: str) -> None:
        """``text`` in the study system attrs ``PREFIX0``, ``PREFIX1``... of
        ``NOTE_CHUNK`` characters each, and the chunks a longer text left blanked: what
        optuna-dashboard's ``save_note`` and ``save_plotly_graph_object`` write, and its
        ``get_note`` and the dashboard read. Not those functions: importing optuna-dashboard
        loads its web app, and with it Optuna's importance, scikit-learn, SciPy and pandas
        (2-6 s of each note's child process on this machine, for a few writes)."""
        chunks = [text[i : i + NOTE_CHUNK] for i in range(0, len(text), NOTE_CHUNK)]
        for i, chunk in enumerate(chunks):
            self._rdb.set_study_system_attr(study_id, f"{prefix}{i}", chunk)
        before = [k for k in self._rdb.get_study_system_attrs(study_id) if k.startswith(prefix)]
        for i in range(len(chunks), len(before)):
            self._rdb.set_study_system_attr(study_id, f"{prefix}{i}", "")
