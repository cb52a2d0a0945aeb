"""The built-in CNN: one frozen config, one module.

Blocks of conv3x3 -> batch norm -> activation -> 2x2 max pool -> dropout, then a linear
head. Every knob a coarse-to-fine search is expected to explore on it (batch norm on/off,
activation, init scheme, depth, width, dropout) is a field of
:class:`~hpsearch.training.config.CNNConfig`, which lives with the other options in
:mod:`hpsearch.training.config` so that a study file is checked against it without torch.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from hpsearch.training.config import CNNConfig

#: Activations whose units can be "dead": never positive on any input, so (for relu) they
#: pass no gradient. For tanh and sigmoid the notion does not apply.
RELU_FAMILY = ("relu", "leaky_relu", "elu")

#: Standard deviation of the ``small`` init: the classic "0.01 * randn" that works for a
#: two-layer net and makes deep nets without batch norm collapse to zero activations.
SMALL_INIT_STD = 0.01


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
        gain_name: Literal["leaky_relu", "relu"] = (
            "leaky_relu" if self.cfg.activation == "leaky_relu" else "relu"
        )
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
            assert isinstance(block, ConvBlock)  # (self.blocks holds nothing else)
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
