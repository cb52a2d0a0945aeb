"""``SearchStore``, the one face of the storage: each concern of a search database in its
own module, joined here so that every caller holds one object."""

from __future__ import annotations

from hpsearch.store.liveness import Liveness
from hpsearch.store.notes import Notes
from hpsearch.store.searches import Searches
from hpsearch.store.stages import Stages
from hpsearch.store.trials import Trials


class SearchStore(Searches, Stages, Trials, Liveness, Notes):
    """One search database: Optuna's storage, hpsearch's coordination rows, one policy.

    Open it with :meth:`SearchStore.open`. Its methods come from the concerns:
    :class:`~hpsearch.store.searches.Searches` (searches and their specs, read by
    :class:`~hpsearch.store.reading.SearchReader`: records and who is on a search too),
    :class:`~hpsearch.store.stages.Stages` (stage studies, leases, slots queued),
    :class:`~hpsearch.store.trials.Trials` (claims, counts),
    :class:`~hpsearch.store.liveness.Liveness` (heartbeats, recovery) and
    :class:`~hpsearch.store.notes.Notes` (dashboard notes); every one of them runs under
    the retry policy of :class:`~hpsearch.store.opening.StoreCore`.
    """
