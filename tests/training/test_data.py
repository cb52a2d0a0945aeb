"""Data: fixed split, train-only statistics, the CIFAR-10 file format, error messages."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from hpsearch.training.data import DataConfig, load_data, split_indices


def test_digits_split_is_deterministic_and_identical_across_loads() -> None:
    first = load_data(DataConfig(split_seed=3))
    load_data.cache_clear()  # really load again
    second = load_data(DataConfig(split_seed=3))
    assert first is not second
    assert torch.equal(first.x_train, second.x_train)
    assert torch.equal(first.y_val, second.y_val)
    assert load_data(DataConfig(split_seed=3)) is second  # cached within the process


def test_split_is_stratified_disjoint_and_depends_on_the_split_seed_only() -> None:
    y = load_digits().target
    train, val = split_indices(y, 0.2, seed=0)
    assert len(np.intersect1d(train, val)) == 0
    assert len(train) + len(val) == len(y)
    # Every class gives round(20%) of its images to validation.
    expected = np.round(np.bincount(y) * 0.2)
    assert np.array_equal(np.bincount(y[val]), expected)
    assert np.array_equal(split_indices(y, 0.2, seed=0)[1], val)
    assert not np.array_equal(split_indices(y, 0.2, seed=1)[1], val)


def raw_digits_train(seed: int = 0) -> np.ndarray:
    """Digits training split in [0, 1], computed independently of the loader."""
    bunch = load_digits()
    train, _ = split_indices(bunch.target, 0.2, seed)
    return bunch.images[train][:, None] / 16.0


def test_per_channel_mean_comes_from_the_training_split_only() -> None:
    data = load_data(DataConfig(preprocess="per_channel_mean"))
    train_mean = raw_digits_train().mean()
    all_mean = load_digits().images.mean() / 16.0
    assert data.shift.item() == pytest.approx(train_mean, rel=1e-6)
    assert data.shift.item() != pytest.approx(all_mean, rel=1e-6)
    assert data.x_train.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert data.x_val.mean().item() != pytest.approx(0.0, abs=1e-4)


def test_mean_image_comes_from_the_training_split_only() -> None:
    data = load_data(DataConfig(preprocess="mean_image"))
    expected = raw_digits_train().mean(axis=0)
    assert data.shift.shape == (1, 8, 8)
    assert np.allclose(data.shift.numpy(), expected, atol=1e-6)
    assert torch.allclose(data.x_train.mean(dim=0), torch.zeros(1, 8, 8), atol=1e-6)


def test_standardize_gives_unit_std_on_train() -> None:
    data = load_data(DataConfig(preprocess="standardize"))
    assert data.x_train.std().item() == pytest.approx(1.0, rel=1e-3)


def test_none_keeps_pixels_in_unit_range() -> None:
    data = load_data(DataConfig(preprocess="none"))
    assert data.x_train.min().item() == 0.0 and data.x_train.max().item() == 1.0


def test_max_train_subsamples_the_training_split_only() -> None:
    full = load_data(DataConfig())
    small = load_data(DataConfig(max_train=100))
    assert len(small.x_train) == 100
    assert torch.equal(small.y_val, full.y_val)


def test_cifar10_loader_reads_the_python_batch_format(cifar_dir: Path) -> None:
    data = load_data(DataConfig(dataset="cifar10", data_dir=str(cifar_dir), preprocess="none"))
    batches = []
    for i in range(1, 6):
        with (cifar_dir / f"data_batch_{i}").open("rb") as f:
            batches.append(pickle.load(f, encoding="bytes"))
    raw = np.concatenate([b[b"data"] for b in batches])
    labels = np.concatenate([b[b"labels"] for b in batches])
    assert data.x_train.shape[1:] == (3, 32, 32)
    assert len(data.x_train) + len(data.x_val) == len(raw)
    assert data.num_classes == 10
    # Rows are channel-major (1024 red, 1024 green, 1024 blue): the first train image's
    # pixels must be found back in the file in that order.
    train, _ = split_indices(labels, 0.2, 0)
    assert data.y_train[0].item() == labels[train[0]]
    expected = raw[train[0]].reshape(3, 32, 32) / 255.0
    assert np.allclose(data.x_train[0].numpy(), expected, atol=1e-6)


def test_cifar10_data_dir_may_be_the_folder_above_the_batches(cifar_dir: Path) -> None:
    data = load_data(DataConfig(dataset="cifar10", data_dir=str(cifar_dir.parent)))
    assert data.x_train.shape[1:] == (3, 32, 32)


def test_missing_cifar10_folder_says_what_to_put_where(tmp_path: Path) -> None:
    folder = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as info:
        load_data(DataConfig(dataset="cifar10", data_dir=str(folder)))
    message = str(info.value)
    for needle in (str(folder), "data_batch_1", "data_batch_5", "cifar-10-python.tar.gz"):
        assert needle in message


def test_corrupt_cifar10_batch_names_the_file(
    tmp_path: Path, cifar_writer: Callable[[Path], Path]
) -> None:
    folder = cifar_writer(tmp_path / "c")
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": [1, 2, 3]}))
    with pytest.raises(ValueError, match="data_batch_3"):
        load_data(DataConfig(dataset="cifar10", data_dir=str(folder)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dataset": "mnist"}, "`dataset` must be one of 'digits', 'cifar10', but got 'mnist'"),
        ({"dataset": "cifar10"}, "needs `data_dir`.*cifar-10-python.tar.gz"),
        ({"preprocess": "zca"}, "`preprocess` must be one of"),
        ({"val_fraction": 1.0}, r"`val_fraction` must be a number in \(0.0, 1.0\)"),
        ({"val_fraction": 1e-6}, "leaves an empty split"),
        ({"split_seed": -1}, "`split_seed` must be an integer >= 0"),
        ({"max_train": 0}, "`max_train` must be an integer >= 1"),
        ({"data_dir": 3}, "`data_dir` must be a path"),
    ],
)
def test_bad_data_options(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_data(DataConfig(**kwargs))


def test_digits_fall_back_to_load_digits_if_the_csv_moves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hpsearch.training import data as data_module

    direct = data_module._load_digits()
    monkeypatch.setattr(data_module.importlib.util, "find_spec", lambda name: None)
    fallback = data_module._load_digits()
    assert np.array_equal(direct[0], fallback[0]) and np.array_equal(direct[1], fallback[1])
    assert direct[0].shape == (1797, 1, 8, 8)
