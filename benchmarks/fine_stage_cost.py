"""What the fine stage's model costs per trial: CPU seconds to fill a slot of a model-based
stage (``hpsearch.engine.fine``) seeded with ``--earlier`` trials of earlier stages, over
``--trials`` slots, and to read those trials from storage once.

The read goes through the real store (a SQLite file on tmpfs: ``store.records`` of a
stage study holding the earlier trials, three quarters stopped early with their curves,
as ASHA leaves a coarse stage); the slots are filled as a worker fills them, through
Optuna's ask/tell on a study whose sampler is the fine stage's, each trial's value from
a cheap 4-parameter function (the objective's own time is not the sampler's). CPU is
process time, all threads.

    python benchmarks/fine_stage_cost.py --earlier 1000 --trials 1000
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time

import numpy as np

TMP = "/dev/shm" if os.path.isdir("/dev/shm") else None


def _space():
    from hpsearch.core.space import CategoricalParam, FloatParam, IntParam, SearchSpace

    return SearchSpace(
        (
            FloatParam("lr", 1e-5, 1.0, log=True),
            FloatParam("wd", 1e-8, 1e-1, log=True),
            IntParam("width", 8, 256, step=8),
            CategoricalParam("act", ("relu", "tanh", "gelu")),
        )
    )


def value(p: dict) -> float:
    return (
        (math.log10(p["lr"]) + 2.5) ** 2
        + 0.1 * (math.log10(p["wd"]) + 4) ** 2
        + (p["width"] / 256 - 0.5) ** 2
        + 0.2 * (p["act"] != "relu")
    )


def earlier_records(n: int, epochs: int, seed: int = 0):
    """``n`` trials of an earlier stage written to a real SQLite store, read back as the
    fine stage's sampler reads them; and the CPU seconds of that read."""
    import optuna
    from optuna.trial import TrialState, create_trial

    from hpsearch import store as st
    from hpsearch.core.points import random_points

    space = _space()
    dists = {p.name: p.to_distribution() for p in space}
    rng = np.random.default_rng(seed)
    trials = []
    for i, p in enumerate(random_points(space, n, seed)):
        v = value(p)
        stopped = i % 4 != 0
        ran = int(rng.integers(1, epochs)) if stopped else epochs
        curve = {e: v + 1.0 / e for e in range(1, ran + 1)}
        trials.append(
            create_trial(
                state=TrialState.PRUNED if stopped else TrialState.COMPLETE,
                value=None if stopped else v + 1.0 / epochs,
                params=p,
                distributions=dists,
                intermediate_values=curve,
                user_attrs={"epochs": epochs, **({"epochs_run": ran} if stopped else {})},
            )
        )
    folder = tempfile.mkdtemp(dir=TMP)
    url = f"sqlite:///{folder}/cost.db"
    study = optuna.create_study(storage=url, study_name="cost/coarse")
    study.add_trials(trials)
    store = st.SearchStore.open(url)
    stage = store.find_stage("cost", "coarse")
    start = time.process_time()
    records = store.records(stage, "coarse")
    return space, records, time.process_time() - start


def fill(model: str, space, records, trials: int, epochs: int) -> list[float]:
    """CPU seconds of each of ``trials`` slots filled by the fine stage's sampler."""
    import optuna

    from hpsearch.engine.fine import Evidence, FineSampler

    box = space  # the prior's weight costs the same whatever the box
    evidence = Evidence(space, box, epochs, tuple(records))
    sampler = FineSampler(lambda: evidence, seed=0, startup=5, model=model)
    study = optuna.create_study(sampler=sampler)
    costs = []
    for _ in range(trials):
        t0 = time.process_time()
        trial = study.ask()
        params = {p.name: p.suggest(trial) for p in space}
        costs.append(time.process_time() - t0)
        study.tell(trial, value(params))
    return costs


def engine_cost(earlier: int, trials: int, epochs: int, most: int | None = None) -> None:
    """The real path: a search of a coarse stage of ``earlier`` random slots and a fine
    TPE stage of ``trials`` slots on a SQLite file, every slot claimed, filled (the fine
    stage's sampler suggests at the claim) and finished as a worker does it, without an
    objective. Prints the CPU of preparing the fine stage and per fine slot (of the first
    ``most`` fine slots only, if given: the dearest to claim, with every other slot
    still queued)."""
    from hpsearch import store as st
    from hpsearch.core.space import SearchSpace
    from hpsearch.engine.stages import prepare_stage, register_search
    from hpsearch.objectives.catalog import parse_spec

    space = _space()
    table = {p.name: p.to_dict() for p in space}
    spec = parse_spec(
        {
            "name": "cost",
            "objective": "problems:branin",
            "space": table,
            "stage": [
                {"name": "coarse", "trials": earlier, "epochs": epochs},
                {"name": "fine", "trials": trials, "epochs": epochs, "sampler": "tpe",
                 "keep": 0.5, "margin": 0.5},
            ],
        }
    )  # fmt: skip
    folder = tempfile.mkdtemp(dir=TMP)
    store = st.SearchStore.open(f"sqlite:///{folder}/engine.db")
    register_search(store, spec)

    def run(index: int) -> list[float]:
        t0 = time.process_time()
        stage = prepare_stage(store, spec, index, owner="bench")
        prepared = time.process_time() - t0
        space = SearchSpace.from_dict(store.stage_attrs(stage)[st.ATTR_SPACE])
        costs = []
        while most is None or index == 0 or len(costs) < most:
            t0 = time.process_time()
            slot = store.claim(stage, space, worker="bench")
            if slot is None:
                break
            costs.append(time.process_time() - t0)
            slot.finish(value(slot.params), {})
        print(
            f"engine, stage {spec.stages[index].name}: prepared in {prepared:.2f} s CPU; "
            f"{len(costs)} slots claimed and filled at mean {np.mean(costs):.3f} s CPU, "
            f"max {max(costs):.3f} s, last 100 mean {np.mean(costs[-100:]):.3f} s"
        )
        return costs

    run(0)
    run(1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--earlier", type=int, default=1000)
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=9)
    ap.add_argument("--models", nargs="+", default=["tpe-trust", "tpe-prior", "gp-prior"])
    ap.add_argument("--engine", action="store_true", help="through the real store and engine")
    ap.add_argument("--most", type=int, help="--engine: claim only this many fine slots")
    ap.add_argument("--model", help="the fine stage's model (core.prior.MODELS) for --engine")
    args = ap.parse_args(argv)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if args.engine:
        from hpsearch.core import prior

        prior.MODEL = args.model or prior.MODEL
        engine_cost(args.earlier, args.trials, args.epochs, args.most)
        return 0
    space, records, read_s = earlier_records(args.earlier, args.epochs)
    print(f"read {len(records)} earlier trials from SQLite: {read_s:.2f} s CPU (once per worker)")
    for model in args.models:
        costs = fill(model, space, records, args.trials, args.epochs)
        last = costs[-100:]
        print(
            f"{model}: {args.trials} slots after {args.earlier} earlier trials: "
            f"mean {np.mean(costs):.3f} s CPU per slot, max {max(costs):.3f} s, "
            f"last 100 mean {np.mean(last):.3f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
