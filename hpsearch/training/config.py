"""The built-in CNN's options, checked without torch: data, model and training configs.

The three frozen configs are what the objective builds from a trial's params, and what a
study file is validated against before anything runs (:mod:`hpsearch.objectives.cnn`
declares their fields as the CNN's parameters), so they live here, apart from the torch
code that uses them. Each config checks all of its fields with :mod:`hpsearch.core.checks`
(the study file's template) and raises one :class:`~hpsearch.core.checks.CheckError` listing
every bad value as "`name` must be ..., but got ...".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpsearch.core.checks import Checker, Constraint, InstanceOf, Interval, Options, Pattern

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


#: A device name: :data:`DEVICES` with any GPU number for ``cuda:N``.
DEVICE = Pattern(r"auto|cpu|cuda(:\d+)?|mps", shown=DEVICES)


def _coerce_fields(config: Any, rules: dict[str, Constraint], c: Checker) -> None:
    """Check each field of a frozen ``config`` against its constraint and assign the
    coerced value back, so that "depth = 2.0" from a sampler works; problems go to ``c``."""
    for key, constraint in rules.items():
        object.__setattr__(config, key, c.coerce(key, getattr(config, key), constraint))


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
        c = Checker()
        rules = {
            "in_channels": Interval(int, 1, None),
            "image_size": Interval(int, 1, None),
            "num_classes": Interval(int, 2, None),
            "depth": Interval(int, 1, 8),
            "width": Interval(int, 1, 1024),
            "batchnorm": InstanceOf(bool),
            "dropout": Interval(float, 0.0, 1.0, closed="left"),
            "activation": Options(ACTIVATIONS),
            "init": Options(INITS),
            "head": Options(HEADS),
        }
        _coerce_fields(self, rules, c)
        c.raise_errors()

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
        c = Checker()
        rules: dict[str, Constraint] = {
            "dataset": Options(DATASETS),
            "preprocess": Options(PREPROCESS),
            "split_seed": Interval(int, 0, None),
            "val_fraction": Interval(float, 0.0, 1.0, closed="neither"),
        }
        if self.max_train is not None:
            rules["max_train"] = Interval(int, 1, None)
        _coerce_fields(self, rules, c)
        if self.data_dir is not None and c.check(
            "data_dir", self.data_dir, InstanceOf(str, Path, words="a path")
        ):
            # A resolved string makes equal folders equal cache keys.
            object.__setattr__(self, "data_dir", str(Path(self.data_dir).expanduser().resolve()))
        if self.dataset == "cifar10" and self.data_dir is None:
            c.error(
                "dataset",
                "needs `data_dir`: the folder holding the CIFAR-10 python batches "
                f"({', '.join(CIFAR10_TRAIN_FILES)}); get them from {CIFAR10_URL}",
            )
        c.raise_errors()


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
        c = Checker()
        if c.check("optimizer", self.optimizer, Options(OPTIMIZERS)) and self.lr is None:
            object.__setattr__(self, "lr", DEFAULT_LR[self.optimizer])
        rules = {
            "lr": Interval(float, 0.0, math.inf, closed="neither"),
            "momentum": Interval(float, 0.0, 1.0, closed="left"),
            "nesterov": InstanceOf(bool),
            "weight_decay": Interval(float, 0.0, math.inf, closed="left"),
            "lr_decay": Interval(float, 0.0, 1.0, closed="right"),
            "batch_size": Interval(int, 1, None),
            "amp": InstanceOf(bool),
        }
        _coerce_fields(self, rules, c)
        if self.nesterov is True and self.momentum == 0:
            c.holds("momentum", False, "momentum > 0", "for `nesterov = true`", momentum=0.0)
        c.raise_errors()
