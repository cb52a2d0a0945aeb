"""The built-in CNN's options, checked without torch: data, model and training configs.

The three frozen configs are what the objective builds from a trial's params, and what a
study file is validated against before anything runs (:mod:`hpsearch.objectives.cnn`
declares their fields as the CNN's parameters), so they live here, apart from the torch
code that uses them. The checks are the training package's one error template: every bad
value fails as "`name` must be ..., but got ...".
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACTIVATIONS = ("relu", "leaky_relu", "elu", "tanh", "sigmoid")
INITS = ("small", "xavier", "he")
HEADS = ("global_avg", "flatten")

DATASETS = ("digits", "cifar10")
PREPROCESS = ("per_channel_mean", "mean_image", "standardize", "none")

CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
#: The folder name the CIFAR-10 archive extracts to; accepted as a subfolder of data_dir.
CIFAR10_FOLDER = "cifar-10-batches-py"


OPTIMIZERS = ("sgd", "adam")

#: Default learning rate per optimiser: what trains the default CNN on digits well. Adam's
#: per-parameter scaling makes its good range about 50x lower than SGD with momentum.
DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3}

#: Device names: ``auto`` picks CUDA when torch sees it; ``cuda:N`` is one GPU of several.
DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
_DEVICE_RE = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


def check_choice(name: str, value: Any, allowed: Sequence[Any]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"`{name}` must be one of {choices}, but got {value!r}.")


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """Return ``value`` as an int in ``[low, high]``; integral floats (and numpy scalars)
    are accepted because TOML and some samplers hand over ``16.0`` for ``16``. Raises
    ``ValueError`` otherwise."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and float(value).is_integer()
    if ok:
        value = int(value)
        ok = value >= low and (high is None or value <= high)
    if not ok:
        rule = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
        raise ValueError(f"`{name}` must be {rule}, but got {value!r}.")
    return int(value)


def check_float(
    name: str,
    value: Any,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a finite float in the given interval, else raise ``ValueError``."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        value = float(value)
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        ok = math.isfinite(value) and above and below
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"`{name}` must be a number in {interval}, but got {value!r}.")
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool; a string "false" would otherwise be truthy."""
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be true or false, but got {value!r}.")
    return value


def check_device(name: str, value: Any) -> str:
    """Return ``value`` if it names a device (:data:`DEVICES`), else raise ``ValueError``.
    Whether the machine has that device is torch's to say, at run time."""
    if not isinstance(value, str) or not _DEVICE_RE.fullmatch(value):
        choices = ", ".join(repr(d) for d in DEVICES)
        raise ValueError(f"`{name}` must be one of {choices}, but got {value!r}.")
    return value


@dataclass(frozen=True)
class CNNConfig:
    """Architecture of the built-in CNN.

    The first three fields describe the data and are filled in by the objective; the rest
    are the searchable architecture knobs (study files use the same names).
    """

    in_channels: int = 1  # digits are grayscale; CIFAR-10 sets 3
    image_size: int = 8  # digits are 8x8; CIFAR-10 is 32x32 (square images only)
    num_classes: int = 10  # both built-in datasets have ten classes
    depth: int = 2  # two blocks take 8x8 digits to 2x2 maps: ~97% accuracy, ms per step
    width: int = 16  # channels of the first block, doubled per block: small and fast on CPU
    batchnorm: bool = True  # the point of the built-in: BN widens the range of good lr/init
    activation: str = "relu"  # the default that "he" init is derived for
    dropout: float = 0.0  # BN already regularises a little; dropout is a knob to search
    init: str = "he"  # matched to relu, so the default network trains from the first step
    head: str = "global_avg"  # parameter count independent of image size; flatten is an option

    def __post_init__(self) -> None:
        # Assigning the coerced values back lets "depth = 2.0" from a sampler work.
        coerced = {
            "in_channels": check_int("in_channels", self.in_channels, 1),
            "image_size": check_int("image_size", self.image_size, 1),
            "num_classes": check_int("num_classes", self.num_classes, 2),
            "depth": check_int("depth", self.depth, 1, 8),
            "width": check_int("width", self.width, 1, 1024),
            "batchnorm": check_bool("batchnorm", self.batchnorm),
            "dropout": check_float("dropout", self.dropout, 0.0, 1.0, high_open=True),
        }
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("init", self.init, INITS)
        check_choice("head", self.head, HEADS)
        for key, value in coerced.items():
            object.__setattr__(self, key, value)

    def block_sizes(self) -> list[int]:
        """Spatial size at the output of each block: halved by pooling, except that a block
        whose pooling would leave fewer than 2x2 pixels skips it (so depth 3 on 8x8 digits
        ends at 2x2 instead of failing)."""
        sizes, size = [], self.image_size
        for _ in range(self.depth):
            if size // 2 >= 2:
                size //= 2
            sizes.append(size)
        return sizes


@dataclass(frozen=True)
class DataConfig:
    """Which data a trial trains on and how it is prepared (study-file keys of the same name).

    The CIFAR-10 ``test_batch`` is deliberately never read: a search tunes on the
    validation split, and the test set stays untouched for the final model.
    """

    dataset: str = "digits"  # bundled with scikit-learn: a search runs offline out of the box
    data_dir: str | None = None  # only CIFAR-10 reads files; digits needs none
    split_seed: int = 0  # the worker passes the search seed, so all trials share one split
    val_fraction: float = 0.2  # ~360 digits to validate on: enough to rank, cheap to score
    preprocess: str = "per_channel_mean"  # centring helps every optimiser; BN does the rest
    max_train: int | None = None  # subsample the training split for quick CIFAR runs

    def __post_init__(self) -> None:
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("preprocess", self.preprocess, PREPROCESS)
        object.__setattr__(self, "split_seed", check_int("split_seed", self.split_seed, 0))
        fraction = check_float(
            "val_fraction", self.val_fraction, 0.0, 1.0, low_open=True, high_open=True
        )
        object.__setattr__(self, "val_fraction", fraction)
        if self.max_train is not None:
            object.__setattr__(self, "max_train", check_int("max_train", self.max_train, 1))
        if self.data_dir is not None:
            if not isinstance(self.data_dir, str | Path):
                raise ValueError(f"`data_dir` must be a path, but got {self.data_dir!r}.")
            # A resolved string makes equal folders equal cache keys.
            object.__setattr__(self, "data_dir", str(Path(self.data_dir).expanduser().resolve()))
        if self.dataset == "cifar10" and self.data_dir is None:
            raise ValueError(
                "`dataset = 'cifar10'` needs `data_dir`: the folder holding the CIFAR-10 "
                f"python batches ({', '.join(CIFAR10_TRAIN_FILES)}); get them from "
                f"{CIFAR10_URL}."
            )


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (study-file keys of the same name)."""

    optimizer: str = "sgd"  # SGD with momentum: the baseline the coarse-to-fine recipe tunes
    lr: float | None = None  # None: DEFAULT_LR of the optimiser
    momentum: float = 0.9  # the standard value; only used by sgd
    nesterov: bool = False  # plain momentum unless asked; only used by sgd
    weight_decay: float = 0.0  # off, so defaults are a plain baseline; a knob to search
    lr_decay: float = 1.0  # lr is multiplied by this after every epoch (exponential decay)
    batch_size: int = 64  # ~22 steps per digits epoch: noisy enough to generalise, fast
    amp: bool = False  # mixed precision; only used on CUDA

    def __post_init__(self) -> None:
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        lr = DEFAULT_LR[self.optimizer] if self.lr is None else self.lr
        coerced = {
            "lr": check_float("lr", lr, 0.0, math.inf, low_open=True, high_open=True),
            "momentum": check_float("momentum", self.momentum, 0.0, 1.0, high_open=True),
            "nesterov": check_bool("nesterov", self.nesterov),
            "weight_decay": check_float(
                "weight_decay", self.weight_decay, 0.0, math.inf, high_open=True
            ),
            "lr_decay": check_float("lr_decay", self.lr_decay, 0.0, 1.0, low_open=True),
            "batch_size": check_int("batch_size", self.batch_size, 1),
            "amp": check_bool("amp", self.amp),
        }
        if coerced["nesterov"] and coerced["momentum"] == 0:
            raise ValueError("`nesterov = true` needs `momentum > 0`, but got momentum 0.")
        for key, value in coerced.items():
            object.__setattr__(self, key, value)
