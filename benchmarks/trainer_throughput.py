"""Trainer throughput: the built-in objective against a minimal hand-written loop.

Questions answered (images per second, medians over interleaved repeats):

1. What does the objective's machinery (validation, divergence checks, diagnostics, init
   probe, reporting) cost against the plainest PyTorch loop training the same model on the
   same data with the same batch size and optimiser? Target: ratio >= 0.9.
2. On this machine, is one worker with all the threads faster in total than one worker per
   core with a thread each? (``launch --workers N`` splits the cores that way.)
3. On CUDA, when present: the same comparison, plus mixed precision.

Images per second counts training images, over the wall time of a whole call (model
construction, training and the per-epoch validation pass), which is what a search pays.

    python benchmarks/trainer_throughput.py            # about a minute on 2 cores
    python benchmarks/trainer_throughput.py --quick    # smoke run, a few seconds
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from hpsearch.core.trial_handle import Reporter
from hpsearch.objectives.cnn import objective
from hpsearch.training.data import DataConfig, load_data
from hpsearch.training.model import CNN, CNNConfig

#: Same settings for both contenders: the objective's defaults, spelled out.
BATCH = 64
LR = 0.05
MOMENTUM = 0.9


@dataclass(frozen=True)
class Row:
    what: str
    device: str
    layout: str  # processes x threads
    images_per_second: float
    ratio: float | None = None  # against the row named in `against`
    against: str = ""


def train_images(params: dict[str, Any], epochs: int) -> int:
    """Training images one call processes (full batches only, as both loops do)."""
    n = len(load_data(DataConfig(max_train=params.get("max_train"))).x_train)
    batch = min(BATCH, n)
    return epochs * (n // batch) * batch


def run_objective(params: dict[str, Any], epochs: int, threads: int) -> float:
    """Wall seconds of one call of the built-in objective."""
    start = time.perf_counter()
    objective(params, epochs, Reporter.recording(seed=0, threads=threads))
    return time.perf_counter() - start


def run_hand_loop(params: dict[str, Any], epochs: int, threads: int) -> float:
    """Wall seconds of the minimal loop: the same model, data, batch size and optimiser;
    shuffled full batches, and a validation pass per epoch (a search needs one per epoch)."""
    start = time.perf_counter()
    torch.set_num_threads(threads)
    device = torch.device(params.get("device", "cpu"))
    data = load_data(DataConfig(max_train=params.get("max_train")))
    x, y = data.x_train.to(device), data.y_train.to(device)
    xv, yv = data.x_val.to(device), data.y_val.to(device)
    torch.manual_seed(0)
    model = CNN(CNNConfig()).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    batch = min(BATCH, len(x))
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), device=device)
        for i in range(len(x) // batch):
            idx = order[i * batch : (i + 1) * batch]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            F.cross_entropy(model(xv), yv).item()
    return time.perf_counter() - start


def interleaved(contenders: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Median seconds per contender, run in turn ``repeats`` times so that drift in machine
    speed (other processes, thermal) hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():
        fn()  # warm-up: data cache, kernel selection, first-call allocations
    for _ in range(repeats):
        for name, fn in contenders.items():
            times[name].append(fn())
    return {name: statistics.median(ts) for name, ts in times.items()}


def timed_calls(params: dict[str, Any], epochs: int, threads: int, calls: int) -> float:
    """Wall seconds of ``calls`` objective calls in a row."""
    start = time.perf_counter()
    for _ in range(calls):
        run_objective(params, epochs, threads)
    return time.perf_counter() - start


def _worker(
    params: dict[str, Any], epochs: int, calls: int, rounds: int, barrier: Any, out: Any
) -> None:
    run_objective(params, 1, 1)  # warm-up: imports, data, kernels
    barrier.wait()  # ready: the first solo run must not compete with this start-up
    for _ in range(rounds):
        barrier.wait()  # all workers start together, once this round's solo run is over
        out.put(timed_calls(params, epochs, 1, calls))


def worker_scaling(
    params: dict[str, Any], epochs: int, processes: int, calls: int, rounds: int
) -> tuple[float, float]:
    """Total images per second of one worker with ``processes`` threads (this process)
    against ``processes`` worker processes with one thread each, measured in alternating
    rounds (medians), so that both see the same machine load."""
    ctx = mp.get_context("spawn")  # what launch uses; no forked torch thread pools
    barrier, out = ctx.Barrier(processes + 1), ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(params, epochs, calls, rounds, barrier, out))
        for _ in range(processes)
    ]
    for p in procs:
        p.start()
    run_objective(params, 1, processes)  # warm-up, as the workers do
    barrier.wait()  # every worker is warm and idle
    images = calls * train_images(params, epochs)
    solo, together = [], []
    for _ in range(rounds):
        solo.append(images / timed_calls(params, epochs, processes, calls))
        barrier.wait()  # the workers wait here (asleep, not spinning) while the solo run goes
        together.append(processes * images / max(out.get() for _ in procs))
    for p in procs:
        p.join()
    return statistics.median(solo), statistics.median(together)


def compare_loops(params: dict[str, Any], epochs: int, threads: int, repeats: int) -> list[Row]:
    device = params.get("device", "cpu")
    contenders: dict[str, Callable[[], float]] = {
        "hand-written loop": lambda: run_hand_loop(params, epochs, threads),
        "hpsearch objective": lambda: run_objective(params, epochs, threads),
    }
    if device == "cuda":
        amp = {**params, "amp": True}
        contenders["hpsearch objective, amp"] = lambda: run_objective(amp, epochs, threads)
    medians = interleaved(contenders, repeats)
    images = train_images(params, epochs)
    ref = "hand-written loop"
    return [
        Row(name, device, f"1x{threads}", images / s, medians[ref] / s, ref)
        for name, s in medians.items()
    ]


def markdown(rows: list[Row]) -> str:
    lines = [
        "| measurement | device | processes x threads | images/s (median) | ratio |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    for r in rows:
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}x vs {r.against}"
        lines.append(
            f"| {r.what} | {r.device} | {r.layout} | {r.images_per_second:,.0f} | {ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (a few seconds)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per call (default 3)")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repeats (default 7)")
    parser.add_argument(
        "--calls", type=int, default=3, help="calls per worker per round (default 3)"
    )
    args = parser.parse_args(argv)

    params: dict[str, Any] = {"lr": LR, "momentum": MOMENTUM, "batch_size": BATCH}
    epochs, repeats, calls = args.epochs, args.repeats, args.calls
    if args.quick:
        params["max_train"] = 256
        epochs, repeats, calls = 1, 1, 1
    # The cores this process may run on (a container or taskset may allow fewer than exist).
    cores = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )

    rows = compare_loops({**params, "device": "cpu"}, epochs, cores, repeats)
    if cores >= 2:
        one, many = worker_scaling({**params, "device": "cpu"}, epochs, cores, calls, repeats)
        rows.append(Row("objective, 1 worker", "cpu", f"1x{cores}", one))
        rows.append(
            Row(f"objective, {cores} workers", "cpu", f"{cores}x1", many, many / one, "1 worker")
        )
    if torch.cuda.is_available():
        rows += compare_loops({**params, "device": "cuda"}, epochs, cores, repeats)

    setting = "quick smoke run" if args.quick else f"{epochs} epochs per call"
    print(f"digits, batch {BATCH}, SGD lr {LR} momentum {MOMENTUM}; {setting}; {cores} cores\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
