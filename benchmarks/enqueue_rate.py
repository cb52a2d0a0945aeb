"""How fast a stage's slots are enqueued (issue 20, item 5): ``SearchStore.enqueue`` of N
slots with three params, fenced by a lease, as stage preparation does it.

    python benchmarks/enqueue_rate.py [--storage URL] [--slots N]

Default: a fresh SQLite file and 20,000 slots. Prints slots/s; the target is 10,000/s on
SQLite and PostgreSQL (pass a fresh, empty database's URL for PostgreSQL)."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import optuna

from hpsearch.core.space import SearchSpace
from hpsearch.store import SearchStore
from hpsearch.store.model import NewSlot, Stage

SPACE = {
    "lr": {"low": 1e-5, "high": 1e-1, "log": True},
    "layers": {"low": 1, "high": 8, "log": False, "step": 1},
    "act": {"choices": ["relu", "tanh"]},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--storage")
    parser.add_argument("--slots", type=int, default=20_000)
    args = parser.parse_args()
    url = args.storage or f"sqlite:///{Path(tempfile.mkdtemp()) / 'enqueue.db'}"
    store = SearchStore.open(url)
    name = f"bench{int(time.time())}/coarse"
    study = optuna.create_study(storage=store.dashboard_storage(), study_name=name)
    stage = Stage(name, study._study_id, study)
    space = SearchSpace.from_dict(SPACE)
    slots = [
        NewSlot(i, {"lr": 10 ** (-5 + 4 * (i % 97) / 97), "layers": 1 + i % 8,
                    "act": ("relu", "tanh")[i % 2]},
                {"slot": i, "stage": "coarse", "epochs": 3, "seed": i})
        for i in range(args.slots)
    ]  # fmt: skip
    lease = store.lease(name, owner="bench:1", duration_s=600)
    assert lease.acquire()
    start = time.perf_counter()
    added = store.enqueue(stage, space, slots, lease)
    took = time.perf_counter() - start
    lease.release()
    assert added == args.slots, added
    print(f"{url.split(':', 1)[0]}: {added} slots in {took:.2f} s = {added / took:,.0f} slots/s")


if __name__ == "__main__":
    main()
