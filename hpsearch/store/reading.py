"""A search read back without Optuna: the reads of :class:`SearchReader`, which
``status``, ``best``, ``list``, ``report`` and a relaunch's checks open, and which
:class:`~hpsearch.store.SearchStore` reads through as well (one way to read).

Every read is plain SQL (``sql.reads``) under the store's retry policy: importing Optuna
and opening its storage took about a second of each such command, most of it theirs."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from hpsearch.objectives.catalog import spec_from_dict
from hpsearch.store.model import ATTR_BASELINE, ATTR_HISTORY, ATTR_READY, ATTR_SPEC, StageRef
from hpsearch.store.opening import StoreCore
from hpsearch.store.policy import StorageBroken
from hpsearch.store.sql import reads, workers

if TYPE_CHECKING:
    from hpsearch.core.records import TrialRecord
    from hpsearch.core.spec import StudySpec

#: Trials per query when a whole stage is read (see :meth:`SearchReader.records`): 30 ms
#: a query on an idle machine. 500 took 130 ms, several times that on a loaded one, and
#: with connections dropped every 0.1 s no attempt got through in 120 s.
READ_BATCH = 100


class SearchReader(StoreCore):
    """The searches in a database, read: each found by its spec on its first stage study,
    its stages, their trials as records, and who is on it now."""

    def find_spec(self, search: str) -> StudySpec | None:
        """The spec stored for ``search`` (on its first stage study), or None if unknown.

        A compare baseline (``hpsearch compare``) is a one-stage search stored beside the
        search it compares with, as ``NAME/grid-baseline``, with a ``baseline`` attr; it is
        addressed by that full study name and never found under ``NAME`` alone.
        """
        for study in self._studies():
            attrs = study.user_attrs
            if ATTR_SPEC not in attrs:
                continue
            if "/" in search:
                found = study.study_name == search and ATTR_BASELINE in attrs
            else:
                found = study.study_name.startswith(search + "/") and ATTR_BASELINE not in attrs
            if found:
                data = attrs[ATTR_SPEC]
                return spec_from_dict(data["spec"], base_dir=data.get("base_dir", "."))
        return None

    def search_names(self) -> list[str]:
        """Names of all searches in the storage (compare baselines are not searches)."""
        return sorted(
            s.study_name.split("/", 1)[0]
            for s in self._studies()
            if "/" in s.study_name
            and ATTR_SPEC in s.user_attrs
            and ATTR_BASELINE not in s.user_attrs
        )

    def baselines(self, search: str) -> dict[str, str]:
        """The ``hpsearch compare`` baselines stored beside ``search``: method -> key."""
        return {
            str(s.user_attrs[ATTR_BASELINE]): s.study_name
            for s in self._studies()
            if s.user_attrs.get(ATTR_BASELINE)
            and s.study_name.startswith(search + "/")
            and ATTR_SPEC in s.user_attrs
        }

    def orphaned_searches(self) -> list[str]:
        """Names that have studies (``NAME/...``) but no search: what is left of a search
        whose first stage study was deleted by hand (``optuna delete-study``)."""
        names = {s.study_name.split("/", 1)[0] for s in self._studies() if "/" in s.study_name}
        return sorted(names - set(self.search_names()))

    # -- the spec now, and every spec it has been -----------------------------------------

    def spec_value(self, spec: StudySpec) -> dict[str, Any]:
        """The stored value of ``spec``'s search (``spec``, ``base_dir``, ``at``), on its
        first stage study; what ``Searches.swap_spec`` compares with."""
        stage = self.find_stage(spec.name, spec.stages[0].name)
        if stage is None or ATTR_SPEC not in (attrs := self.stage_attrs(stage)):
            raise StorageBroken(f"the spec of search {spec.name!r} is gone from the storage")
        value: dict[str, Any] = attrs[ATTR_SPEC]
        return value

    def current_spec(self, spec: StudySpec) -> StudySpec:
        """The spec stored now for ``spec``'s search (an edit may have changed it since)."""
        value = self.spec_value(spec)
        return spec_from_dict(value["spec"], base_dir=value.get("base_dir", "."))

    def ready_stages(self, search: str, stages: list[str]) -> set[str]:
        """Which of these stages of ``search`` are prepared (their study has ``ready``)."""
        found = {name: self.find_stage(search, name) for name in stages}
        return {
            name
            for name, stage in found.items()
            if stage is not None and self.stage_attrs(stage).get(ATTR_READY)
        }

    def spec_history(self, spec: StudySpec) -> list[dict[str, Any]]:
        """Every spec the search has had, oldest first: ``{"at", "spec", "changes"}``
        (empty for a search never edited)."""
        stage = self.find_stage(spec.name, spec.stages[0].name)
        if stage is None:
            return []
        history: list[dict[str, Any]] = self.stage_attrs(stage).get(ATTR_HISTORY, [])
        return history

    # -- trials, and who is on the search --------------------------------------------------

    def records(self, stage: StageRef, stage_name: str) -> list[TrialRecord]:
        """All trials of a stage as records, re-queued ones marked ``superseded``.

        Read from the database each time, in ``READ_BATCH`` trials per read (six queries,
        ``sql.reads.trial_records``), each retried on its own: a long read never completes
        while connections drop, and a worker reading a 5,000-trial stage keeps no more
        than a batch of rows at once. Trials added after the stage's ids were listed are
        the next read's."""
        ids = self._sql("list trials", reads.trial_ids, stage.study_id)
        records: list[TrialRecord] = []
        retried: set[int] = set()
        for i in range(0, len(ids), READ_BATCH):
            batch, again = self._sql(
                "read trials", reads.trial_records, ids[i : i + READ_BATCH], stage_name
            )
            records += batch
            retried |= again
        return [replace(r, superseded=True) if r.number in retried else r for r in records]

    def live_trials(self, search: str, grace_period: float) -> int:
        """RUNNING trials of ``search`` whose worker beat within ``grace_period`` seconds
        (the worker's ``--grace-period``): a worker is on the search right now."""

        def count() -> int:
            engine = self.engine
            ids = reads.studies_of(engine, search).values()
            return sum(reads.count_live(engine, i, grace_period) for i in ids)

        return self._retry(count, "count running trials")

    def live_workers(self, search: str, grace_period: float) -> list[str]:
        """Workers attached to ``search`` that beat within ``grace_period`` seconds: on it
        now, whether running a trial, preparing a stage or waiting at a barrier."""
        return self._sql("list workers", workers.live_on, search, grace_period)
