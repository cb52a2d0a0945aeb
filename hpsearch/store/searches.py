"""Searches and their specs: registering a search, finding it by name, the spec it holds
now and every spec it has been (a relaunch's edits), listing and deleting searches whole."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpsearch.store.model import (
    ATTR_BASELINE,
    ATTR_HISTORY,
    ATTR_SPEC,
    now_iso,
    stage_study_name,
)
from hpsearch.store.opening import StoreBase
from hpsearch.store.reading import SearchReader
from hpsearch.store.sql import studies, workers
from hpsearch.store.sql.leases import swap_study_attr

if TYPE_CHECKING:
    from hpsearch.core.spec import StudySpec
    from hpsearch.store.stages import StoreLease


class Searches(StoreBase, SearchReader):
    """The searches in the database, each found by its spec on its first stage study
    (found by :class:`~hpsearch.store.reading.SearchReader`): registered, edited, deleted."""

    def register(self, spec: StudySpec, *, baseline: str | None = None) -> dict[str, Any] | None:
        """Store ``spec`` on its first stage study unless a spec is there already.

        Returns None if this call stored it (the search is new), else the stored spec's
        dict for the caller to compare. Atomic: two launches racing with different specs
        cannot both win (the attr is inserted if absent, in one statement). A baseline's
        ``baseline`` attr is written before its spec, so that no reader ever sees a
        baseline's spec without it.
        """
        stage = self._open_study(stage_study_name(spec.name, spec.stages[0].name), spec, None)
        if baseline is not None:
            self._sql(
                "mark baseline", studies.add_study_attr, stage.study_id, ATTR_BASELINE, baseline
            )
        value = {"spec": spec.to_dict(), "base_dir": spec.base_dir, "at": now_iso()}
        if self._sql("store spec", studies.add_study_attr, stage.study_id, ATTR_SPEC, value):
            return None
        stored: dict[str, Any] = self.stage_attrs(stage)[ATTR_SPEC]
        return stored

    # -- editing the spec ----------------------------------------------------------------

    def swap_spec(
        self,
        spec: StudySpec,
        old: dict[str, Any],
        new: dict[str, Any],
        changes: list[str],
        leases: list[StoreLease],
    ) -> bool:
        """Replace the stored value ``old`` of the search's spec by ``new``, and append
        ``new`` to its history with ``changes``; False (nothing written) if the stored
        value is not ``old`` any more. One transaction, fenced by ``leases``."""
        stage = self.find_stage(spec.name, spec.stages[0].name)
        assert stage is not None, "a spec is swapped only where one is stored"
        entries = [] if self.spec_history(spec) else [_history_entry(old, [])]
        entries.append(_history_entry(new, changes))
        return self._sql(
            "edit spec",
            swap_study_attr,
            stage.study_id,
            ATTR_SPEC,
            old,
            new,
            leases=[lease.lease for lease in leases],
            append=(ATTR_HISTORY, entries),
        )

    # -- managing searches (list, delete) ------------------------------------------------

    def search_studies(self, search: str) -> list[str]:
        """Every study of ``search``: its stages and its compare baselines, sorted. Found
        by name, not by the spec, so that what is left of a half-deleted search shows."""
        return sorted(self._sql("list studies", studies.studies_of, search))

    def delete_search(
        self, search: str, grace_period: float, *, force: bool = False
    ) -> tuple[list[str], list[str], int]:
        """Delete every study of ``search`` (stages and baselines) in one transaction,
        unless a worker is live on it (attached with a fresh beat, or a RUNNING trial with
        a fresh heartbeat), decided in that same transaction; ``force`` deletes anyway.
        Returns ``(names deleted, live workers, live trials)``: nothing is deleted when a
        worker is live. The lease rows stay: a lease's fencing token must never go back
        (see ``sql.leases.Lease.release``), and a relaunch takes a released one over."""
        return self._sql(
            f"delete search {search}",
            workers.delete_unless_live,
            search,
            grace_period,
            force=force,
        )


def _history_entry(value: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    return {"at": value.get("at"), "spec": value["spec"], "changes": changes}
