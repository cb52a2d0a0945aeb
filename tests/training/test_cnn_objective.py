"""The built-in objective through the Reporter contract: learning, determinism, diagnostics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from hpsearch.core.trial_handle import Reporter, TrialLost
from hpsearch.objectives.cnn import PARAM_KEYS, objective

EXPECTED_ATTRS = {
    "diverged", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
    "curve_train_loss", "curve_val_loss", "curve_train_accuracy", "curve_val_accuracy",
    "epochs_run", "device", "seconds", "images_per_second", "not_learning",
    "flat_then_drop", "overfit_gap", "dead_unit_fraction", "act_std_layer",
}  # fmt: skip
#: What ``device = "auto"`` resolves to here: these tests pass with and without a GPU.
AUTO_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def run(params: dict, epochs: int = 2, seed: int = 0) -> tuple[float, Reporter]:
    report = Reporter.recording(seed=seed, threads=1)
    return objective(params, epochs, report), report


def test_two_epochs_on_digits_learn_and_report_each_epoch() -> None:
    value, report = run({"lr": 0.05, "metric": "val_accuracy"})
    assert value > 0.5
    assert list(report.values) == [1, 2]
    assert report.values[2] == value
    attrs = report.attrs
    assert set(attrs) >= EXPECTED_ATTRS
    assert attrs["diverged"] is False and attrs["epochs_run"] == 2
    assert attrs["val_accuracy"] == value
    assert len(attrs["curve_val_loss"]) == 2 and len(attrs["act_std_layer"]) == 2
    assert attrs["device"] == AUTO_DEVICE and attrs["images_per_second"] > 0
    json.dumps(attrs, allow_nan=False)  # storable as trial user attrs


def test_default_metric_is_validation_loss() -> None:
    value, report = run({}, epochs=1)
    assert value == report.attrs["val_loss"] == report.values[1]


def test_val_error_is_one_minus_accuracy() -> None:
    value, report = run({"metric": "val_error"}, epochs=1)
    assert value == pytest.approx(1.0 - report.attrs["val_accuracy"])


def test_same_params_and_seed_give_the_same_result() -> None:
    params = {"dropout": 0.3, "optimizer": "adam", "lr": 3e-3}
    first, r1 = run(params)
    second, r2 = run(params)
    assert first == second
    assert r1.attrs["curve_train_loss"] == r2.attrs["curve_train_loss"]
    other, _ = run(params, seed=1)
    assert other != first


@pytest.mark.parametrize(
    ("metric", "expected"),
    [("val_loss", math.log(10)), ("val_accuracy", 0.1), ("val_error", 0.9)],
)
def test_divergence_returns_a_finite_chance_level_value(metric: str, expected: float) -> None:
    value, report = run({"lr": 1e3, "optimizer": "sgd", "metric": metric}, epochs=3)
    assert math.isfinite(value)
    if metric == "val_loss":
        assert value >= expected  # no better than a uniform guess
    else:
        assert value == pytest.approx(expected)
    assert report.attrs["diverged"] is True
    assert report.attrs["diverged_reason"].startswith("train loss")
    assert report.values == {1: value}  # the stand-in is reported for the epoch it died in
    json.dumps(report.attrs, allow_nan=False)


def test_bad_init_is_flagged_flat_then_drop_and_a_good_one_is_not() -> None:
    # Small init without batch norm: the loss sits at chance for ~3 epochs, then falls.
    _, bad = run({"init": "small", "batchnorm": False, "optimizer": "adam", "lr": 1e-3}, 8)
    assert bad.attrs["flat_then_drop"] and not bad.attrs["not_learning"]
    _, good = run({}, 3)
    assert not good.attrs["flat_then_drop"] and not good.attrs["not_learning"]


def test_trial_lost_propagates() -> None:
    def lose(epoch: int, value: float) -> None:
        raise TrialLost("taken away")

    report = Reporter(seed=0, threads=1, on_value=lose)
    with pytest.raises(TrialLost):
        objective({}, 3, report)


def test_cifar10_from_a_local_folder(cifar_dir: Path) -> None:
    value, report = run({"dataset": "cifar10", "data_dir": str(cifar_dir), "depth": 3}, 1)
    assert math.isfinite(value)
    assert report.attrs["epochs_run"] == 1


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"learning_rate": 0.1}, "Unknown parameter.*'learning_rate'.*known parameters: "),
        ({"num_classes": 3}, "Unknown parameter.*'num_classes'"),
        ({"metric": "f1"}, "`metric` must be one of 'val_loss', 'val_accuracy', 'val_error'"),
        ({"activation": "gelu"}, "`activation` must be one of"),
        ({"optimizer": "lion"}, "`optimizer` must be one of"),
        ({"dataset": "imagenet"}, "`dataset` must be one of"),
        ({"device": "tpu"}, "`device` must be one of"),
    ],
)
def test_bad_params_fail_before_training(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        run(params)


def test_param_keys_cover_every_documented_knob() -> None:
    documented = {
        "dataset", "data_dir", "split_seed", "val_fraction", "preprocess", "max_train",
        "depth", "width", "batchnorm", "activation", "dropout", "init", "head",
        "optimizer", "lr", "momentum", "nesterov", "weight_decay", "lr_decay",
        "batch_size", "amp", "device", "metric",
    }  # fmt: skip
    assert set(PARAM_KEYS) == documented
