"""Record real training curves for the ``digits-mlp`` benchmark problem (problems.py).

A small torch MLP (64 -> width -> width -> 10, ReLU, dropout) trained with SGD (Nesterov
momentum 0.9) on scikit-learn's digits (ships offline: 1,797 8x8 images; a fixed
stratified split, 1,257 train / 540 validation), for ``EPOCHS`` epochs at each point of a
scrambled Sobol design over five hyperparameters (lr and weight decay log-scaled, width and
batch size log-scaled integers, dropout linear). After every epoch the validation
cross-entropy is recorded; a run whose loss turns nan or inf (large learning rates do) is
recorded as nan from that epoch on, as the training loop would fail there.

Everything is seeded (the design, the split, each run's initialisation and batch order from
its index), single-threaded, so a rerun gives the same file up to floating-point
differences between machines. Output: ``benchmarks/data/digits_mlp.npz`` (float32 curves,
the design, the space), replayed by ``problems.digits_mlp``.

    nice -n 10 python benchmarks/record_digits_mlp.py              # 1024 configurations
    nice -n 10 python benchmarks/record_digits_mlp.py --configs 5 --out /tmp/t.npz  # timing
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "data" / "digits_mlp.npz"
EPOCHS = 27
#: The recorded space: (name, low, high, log, int). Must match problems.DIGITS_MLP_SPACE.
SPACE = (
    ("lr", 1e-3, 3.0, True, False),
    ("weight_decay", 1e-6, 1e-1, True, False),
    ("width", 16, 512, True, True),
    ("dropout", 0.0, 0.7, False, False),
    ("batch_size", 16, 512, True, True),
)


def design(n: int, seed: int = 0) -> np.ndarray:
    """``n`` configurations (rows, SPACE's order) from a scrambled Sobol sequence."""
    import warnings

    from scipy.stats import qmc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # n not a power of 2
        unit = qmc.Sobol(d=len(SPACE), scramble=True, seed=seed).random(n)
    rows = np.empty_like(unit)
    for j, (_, low, high, log, is_int) in enumerate(SPACE):
        if log:
            x = 10 ** (math.log10(low) + unit[:, j] * (math.log10(high) - math.log10(low)))
        else:
            x = low + unit[:, j] * (high - low)
        rows[:, j] = np.clip(np.round(x), low, high) if is_int else x
    return rows


def data() -> tuple:
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    xtr, xva, ytr, yva = train_test_split(x / 16.0, y, test_size=540, stratify=y, random_state=0)
    # one scale for all pixels: a pixel blank in every training image has no std of its own
    mean, std = xtr.mean(0), xtr.std()
    t = lambda a: torch.tensor((a - mean) / std, dtype=torch.float32)  # noqa: E731
    return t(xtr), torch.tensor(ytr), t(xva), torch.tensor(yva)


def train(row: np.ndarray, index: int, tensors: tuple, epochs: int = EPOCHS) -> np.ndarray:
    """One configuration's validation loss after each epoch (nan once it diverged)."""
    import torch
    from torch import nn

    lr, wd, width, dropout, batch = (float(v) for v in row)
    width, batch = int(width), int(batch)
    xtr, ytr, xva, yva = tensors
    torch.manual_seed(index)
    model = nn.Sequential(
        nn.Linear(64, width),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(width, width),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(width, 10),
    )
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=wd)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(index)
    curve = np.full(epochs, np.nan, dtype=np.float32)
    n = len(xtr)
    for e in range(epochs):
        model.train()
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, batch):
            idx = order[i : i + batch]
            opt.zero_grad()
            loss = loss_fn(model(xtr[idx]), ytr[idx])
            if not torch.isfinite(loss):
                return curve  # diverged: nan from here on
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val = float(loss_fn(model(xva), yva))
        if not math.isfinite(val) or val > 1e6:
            return curve
        curve[e] = val
    return curve


_TENSORS: list[tuple] = []


def _one(job: tuple[int, np.ndarray]) -> tuple[np.ndarray, float]:
    """One configuration (in a pool process: single-threaded, data loaded once)."""
    import torch

    torch.set_num_threads(1)
    if not _TENSORS:
        _TENSORS.append(data())
    start = time.process_time()
    curve = train(job[1], job[0], _TENSORS[0])
    return curve, time.process_time() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", type=int, default=1024)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--processes", type=int, default=1, help="each single-threaded")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    rows = design(args.configs)
    curves = np.empty((len(rows), EPOCHS), dtype=np.float32)
    start, wall = time.process_time(), time.perf_counter()
    if args.processes > 1:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(args.processes) as pool:
            out = pool.map(_one, [(i, row) for i, row in enumerate(rows)], chunksize=4)
        for i, (curve, _) in enumerate(out):
            curves[i] = curve
        cpu = sum(c for _, c in out)
    else:
        for i, row in enumerate(rows):
            curves[i], _ = _one((i, row))
            if (i + 1) % 64 == 0 or i + 1 == len(rows):
                cpu = time.process_time() - start
                print(f"{i + 1}/{len(rows)} configurations, {cpu:.0f} s CPU", file=sys.stderr)
        cpu = time.process_time() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "space": [list(s) for s in SPACE],
        "epochs": EPOCHS,
        "configs": len(rows),
        "cpu_seconds": round(cpu, 1),
        "wall_seconds": round(time.perf_counter() - wall, 1),
        "processes": args.processes,
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        "torch": torch.__version__,
        "model": "MLP 64-w-w-10 ReLU dropout, SGD nesterov momentum 0.9, cross-entropy",
        "split": "sklearn digits, stratified, 1257 train / 540 validation, random_state 0",
        "design": "scrambled Sobol, scipy qmc seed 0",
    }
    np.savez_compressed(
        args.out, params=rows.astype(np.float64), curves=curves, meta=np.array(json.dumps(meta))
    )
    final = curves[:, -1]
    ok = np.isfinite(final)
    print(
        f"{len(rows)} configurations x {EPOCHS} epochs in {cpu:.0f} s CPU; "
        f"{(~ok).sum()} diverged; best final val loss {np.nanmin(final):.4f}; "
        f"{args.out} {args.out.stat().st_size / 1024:.0f} KiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
