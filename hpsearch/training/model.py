"""The built-in CNN: one frozen config, one module.

Blocks of conv3x3 -> batch norm -> activation -> 2x2 max pool -> dropout, then a linear
head. Every knob a coarse-to-fine search is expected to explore on it (batch norm on/off,
activation, init scheme, depth, width, dropout) is a config field, checked up front so a
bad study file fails on its first trial with a message naming the field.

This module also holds the training package's one error template (``check_choice`` and
friends) so that data, model and loop options fail the same way.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ("relu", "leaky_relu", "elu", "tanh", "sigmoid")
INITS = ("small", "xavier", "he")
HEADS = ("global_avg", "flatten")

#: Activations whose units can be "dead": never positive on any input, so (for relu) they
#: pass no gradient. For tanh and sigmoid the notion does not apply.
RELU_FAMILY = ("relu", "leaky_relu", "elu")

#: Standard deviation of the ``small`` init: the classic "0.01 * randn" that works for a
#: two-layer net and makes deep nets without batch norm collapse to zero activations.
SMALL_INIT_STD = 0.01


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


def _activation(name: str) -> nn.Module:
    return {
        "relu": nn.ReLU,
        "leaky_relu": nn.LeakyReLU,
        "elu": nn.ELU,
        "tanh": nn.Tanh,
        "sigmoid": nn.Sigmoid,
    }[name]()


class ConvBlock(nn.Module):
    """conv3x3 -> batch norm (optional) -> activation -> 2x2 max pool (optional) -> dropout."""

    def __init__(self, c_in: int, c_out: int, cfg: CNNConfig, pool: bool) -> None:
        super().__init__()
        # A conv bias is redundant before batch norm, which subtracts the mean anyway.
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=not cfg.batchnorm)
        self.bn = nn.BatchNorm2d(c_out) if cfg.batchnorm else None
        self.act = _activation(cfg.activation)
        self.pool = nn.MaxPool2d(2) if pool else None
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        x = self.act(x)
        if self.pool is not None:
            x = self.pool(x)
        if self.drop is not None:
            x = self.drop(x)
        return x


class CNN(nn.Module):
    """The built-in CNN. ``forward`` maps ``(N, C, H, W)`` images to ``(N, classes)`` logits."""

    def __init__(self, cfg: CNNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        blocks, c_in, size = [], cfg.in_channels, cfg.image_size
        for i, out_size in enumerate(cfg.block_sizes()):
            c_out = cfg.width * 2**i
            blocks.append(ConvBlock(c_in, c_out, cfg, pool=out_size < size))
            c_in, size = c_out, out_size
        self.blocks = nn.Sequential(*blocks)
        features = c_in if cfg.head == "global_avg" else c_in * size * size
        self.head = nn.Linear(features, cfg.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """Apply ``cfg.init`` to every conv and linear weight; biases start at zero and
        batch norm at the identity, so the init scheme alone sets the signal's scale."""
        gain_name = "leaky_relu" if self.cfg.activation == "leaky_relu" else "relu"
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                if self.cfg.init == "small":
                    nn.init.normal_(m.weight, std=SMALL_INIT_STD)
                elif self.cfg.init == "xavier":
                    nn.init.xavier_normal_(m.weight)
                else:
                    nn.init.kaiming_normal_(m.weight, nonlinearity=gain_name)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(x)
        x = x.mean(dim=(2, 3)) if self.cfg.head == "global_avg" else x.flatten(1)
        return self.head(x)

    @torch.no_grad()
    def probe_activations(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Pre- and post-activation outputs of every block on one batch, for diagnostics.

        Batch norm uses the batch's own statistics (as in training) without updating its
        running buffers, and dropout is skipped: the probe must not change the model or
        consume random numbers, so probing a trial does not change its result.
        """
        pre, post = [], []
        for block in self.blocks:
            h = block.conv(x)
            if block.bn is not None:
                h = F.batch_norm(
                    h, None, None, block.bn.weight, block.bn.bias, training=True, eps=block.bn.eps
                )
            a = block.act(h)
            pre.append(h)
            post.append(a)
            x = block.pool(a) if block.pool is not None else a
        return pre, post
