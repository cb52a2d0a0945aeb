"""Fixtures for the training tests: a tiny CIFAR-10 folder in the real file format."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

IMAGES_PER_BATCH = 50


def write_cifar10(folder: Path, images_per_batch: int = IMAGES_PER_BATCH) -> Path:
    """Write CIFAR-10 python batches (``data_batch_1..5``, ``test_batch``) of random images.

    Same layout as the real download: pickled dicts with ``b"data"`` (uint8, N x 3072,
    channel-major rows) and ``b"labels"`` (list of ints in 0..9). Labels cycle through the
    ten classes so every class has members in every batch.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batch = {
            b"batch_label": name.encode(),
            b"data": rng.integers(0, 256, size=(images_per_batch, 3072), dtype=np.uint8),
            b"labels": [i % 10 for i in range(images_per_batch)],
        }
        with (folder / name).open("wb") as f:
            pickle.dump(batch, f)
    return folder


@pytest.fixture
def cifar_dir(tmp_path: Path) -> Path:
    """A folder of CIFAR-10 batches with ``IMAGES_PER_BATCH`` random images each."""
    return write_cifar10(tmp_path / "cifar-10-batches-py")


@pytest.fixture
def cifar_writer() -> Callable[[Path], Path]:
    """:func:`write_cifar10` itself, for tests that alter the files it writes (a fixture,
    not an import: conftest modules are not importable under every pytest import mode)."""
    return write_cifar10
