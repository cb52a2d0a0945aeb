"""Datasets for the built-in objective: digits (bundled), CIFAR-10 (local folder).

Every trial of a search must see the same train/validation split, otherwise trials differ
by their data as much as by their hyperparameters: the split depends only on
``split_seed``, never on the trial's seed. Preprocessing statistics (mean image, channel
means and stds) are computed on the training split only, so the validation score is not
flattered by information from the validation images.

Arrays are loaded once per process (``functools.lru_cache``): a worker runs many short
trials, and re-reading CIFAR-10 for each would cost more than a coarse trial's training.
Everything is kept as in-memory tensors; the loop shuffles indices with a seeded generator
instead of using a ``DataLoader``, which for datasets this small is mostly overhead.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hpsearch.training.config import CIFAR10_FOLDER, CIFAR10_TRAIN_FILES, CIFAR10_URL, DataConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dataset:
    """A preprocessed train/validation split, as float32 ``(N, C, H, W)`` tensors on CPU.

    ``shift`` and ``scale`` are the statistics that were applied
    (``x = (raw - shift) / scale``), both computed on the training split only. The tensors
    are shared by every trial of the process (cached): callers must not modify them in
    place.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int
    shift: torch.Tensor
    scale: torch.Tensor

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[2])


@functools.lru_cache(maxsize=2)
def load_data(cfg: DataConfig) -> Dataset:
    """The split and preprocessed dataset for ``cfg``, loaded once per process.

    Cached on the (frozen, hashable) config; ``load_data.cache_clear()`` frees the memory.
    Two entries: a worker runs one search at a time, and CIFAR-10 in float32 is 600 MB.
    """
    x, y, pixel_max = _load_raw(cfg.dataset, cfg.data_dir)
    train_idx, val_idx = split_indices(y, cfg.val_fraction, cfg.split_seed)
    if cfg.max_train is not None and cfg.max_train < len(train_idx):
        rng = np.random.default_rng([cfg.split_seed, 1])
        train_idx = np.sort(rng.choice(train_idx, size=cfg.max_train, replace=False))
    x_train, x_val = x[train_idx], x[val_idx]
    shift, scale = _statistics(x_train, pixel_max, cfg.preprocess)
    logger.info(
        "loaded %s: %d train, %d val images of shape %s",
        cfg.dataset,
        len(train_idx),
        len(val_idx),
        x.shape[1:],
    )
    shift_t = torch.from_numpy(shift.astype(np.float32))
    scale_t = torch.from_numpy(scale.astype(np.float32))

    def prep(a: np.ndarray) -> torch.Tensor:
        # In place in float32: one copy of the images, not a float64 temporary.
        return torch.from_numpy(a).float().div_(pixel_max).sub_(shift_t).div_(scale_t)

    return Dataset(
        x_train=prep(x_train),
        y_train=torch.from_numpy(y[train_idx].astype(np.int64)),
        x_val=prep(x_val),
        y_val=torch.from_numpy(y[val_idx].astype(np.int64)),
        num_classes=int(y.max()) + 1,
        shift=shift_t,
        scale=scale_t,
    )


def split_indices(y: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A stratified train/validation split of ``range(len(y))``, a function of the seed only.

    Each class contributes ``round(count * val_fraction)`` images to validation, so class
    proportions match in both parts. Returns sorted index arrays (train, val).

    Raises:
        ValueError: if either part would be empty.
    """
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        val.append(members[: int(round(len(members) * val_fraction))])
    val_idx = np.sort(np.concatenate(val))
    train_idx = np.setdiff1d(np.arange(len(y)), val_idx)
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise ValueError(
            f"`val_fraction = {val_fraction}` leaves an empty split of {len(y)} images "
            f"({len(train_idx)} train, {len(val_idx)} validation)."
        )
    return train_idx, val_idx


def _statistics(
    x_train: np.ndarray, pixel_max: float, preprocess: str
) -> tuple[np.ndarray, np.ndarray]:
    """``(shift, scale)`` for ``preprocess`` in [0, 1] pixel units, from the training images
    only; reductions accumulate in float64 so CIFAR-10 means are exact to float32."""
    c = x_train.shape[1]
    one = np.ones((1, 1, 1))
    if preprocess == "mean_image":
        return x_train.mean(axis=0, dtype=np.float64) / pixel_max, one
    channel_mean = x_train.mean(axis=(0, 2, 3), dtype=np.float64).reshape(c, 1, 1) / pixel_max
    if preprocess == "per_channel_mean":
        return channel_mean, one
    if preprocess == "standardize":
        std = x_train.std(axis=(0, 2, 3), dtype=np.float64).reshape(c, 1, 1) / pixel_max
        # A constant channel has std 0; leave it unscaled rather than divide by zero.
        return channel_mean, np.where(std > 0, std, 1.0)
    return np.zeros((1, 1, 1)), one


@functools.lru_cache(maxsize=2)
def _load_raw(dataset: str, data_dir: str | None) -> tuple[np.ndarray, np.ndarray, float]:
    """All labelled training images ``(N, C, H, W)`` in their stored integer dtype, their
    labels, and the pixel maximum that maps them to [0, 1]. Kept as integers (CIFAR-10:
    150 MB as uint8, 600 MB as float32) because the cache holds them for the process."""
    if dataset == "digits":
        x, y = _load_digits()
        return x, y, 16.0  # pixel values are the integers 0..16 in this dataset
    if data_dir is None:
        raise ValueError(f"`dataset = {dataset!r}` needs `data_dir`.")
    x, y = _load_cifar10(Path(data_dir))
    return x, y, 255.0


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits, as uint8 ``(1797, 1, 8, 8)`` images and labels.

    Reads the CSV scikit-learn ships without importing scikit-learn, which costs about a
    second in every fresh worker process; ``load_digits`` is the fall-back should the file
    ever move.
    """
    spec = importlib.util.find_spec("sklearn")  # locates the package without running it
    folders = spec.submodule_search_locations if spec is not None else None
    csv = Path(next(iter(folders or [""])), "datasets", "data", "digits.csv.gz")
    if csv.is_file():
        table = np.loadtxt(csv, delimiter=",", dtype=np.uint8)
        images, labels = table[:, :-1], table[:, -1].astype(np.int64)
    else:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images, labels = bunch.data.astype(np.uint8), bunch.target
    return images.reshape(-1, 1, 8, 8), labels


def _load_cifar10(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    if not (folder / CIFAR10_TRAIN_FILES[0]).is_file() and (folder / CIFAR10_FOLDER).is_dir():
        folder = folder / CIFAR10_FOLDER
    missing = [name for name in CIFAR10_TRAIN_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 data_dir {str(folder)!r} lacks {', '.join(missing)}. It must hold the "
            f"CIFAR-10 python batches {', '.join(CIFAR10_TRAIN_FILES)} (test_batch is not "
            f"used). Download {CIFAR10_URL}, extract it, and set data_dir to the "
            f"{CIFAR10_FOLDER!r} folder it creates."
        )
    xs, ys = [], []
    for name in CIFAR10_TRAIN_FILES:
        x, y = _read_cifar_batch(folder / name)
        xs.append(x)
        ys.append(y)
    # Rows are channel-major: 1024 red, then 1024 green, then 1024 blue values.
    return np.concatenate(xs).reshape(-1, 3, 32, 32), np.concatenate(ys)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled CIFAR-10 batch: ``{b"data": uint8 (N, 3072), b"labels": [int]}``.

    ``pickle`` is the format's own encoding; only point data_dir at files you trust.
    """
    with path.open("rb") as f:
        try:
            batch: Any = pickle.load(f, encoding="bytes")
        except (pickle.UnpicklingError, EOFError, ValueError) as e:
            raise ValueError(f"{str(path)!r} is not a CIFAR-10 python batch: {e}") from e
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{str(path)!r} is not a CIFAR-10 python batch: no b'data'/b'labels'.")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(
            f"{str(path)!r}: expected b'data' of shape (N, 3072) and N labels, but got "
            f"{data.shape} and {labels.shape}."
        )
    return data, labels
