"""The CNN: shapes, batch norm switch, activations, init schemes, config errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hpsearch.training.config import ACTIVATIONS, HEADS, INITS, CNNConfig
from hpsearch.training.model import CNN

INPUTS = [(1, 8), (3, 32)]  # (channels, size): digits and CIFAR-10


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize(("channels", "size"), INPUTS)
@pytest.mark.parametrize("head", HEADS)
def test_output_shape(depth: int, channels: int, size: int, head: str) -> None:
    cfg = CNNConfig(in_channels=channels, image_size=size, depth=depth, width=4, head=head)
    logits = CNN(cfg)(torch.randn(5, channels, size, size))
    assert logits.shape == (5, 10)


@pytest.mark.parametrize(
    ("size", "depth", "expected"),
    [(8, 1, [4]), (8, 3, [4, 2, 2]), (32, 3, [16, 8, 4]), (3, 2, [3, 3])],
)
def test_pooling_stops_before_maps_drop_below_two(size: int, depth: int, expected: list) -> None:
    assert CNNConfig(image_size=size, depth=depth).block_sizes() == expected


def test_width_doubles_per_block() -> None:
    model = CNN(CNNConfig(depth=3, width=8))
    assert [b.conv.out_channels for b in model.blocks] == [8, 16, 32]


@pytest.mark.parametrize("batchnorm", [True, False])
def test_batchnorm_switch(batchnorm: bool) -> None:
    model = CNN(CNNConfig(batchnorm=batchnorm))
    has_bn = any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert has_bn == batchnorm
    # The conv bias is dropped exactly when batch norm would cancel it.
    assert all((b.conv.bias is None) == batchnorm for b in model.blocks)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("init", INITS)
def test_every_activation_and_init_gives_finite_logits(activation: str, init: str) -> None:
    torch.manual_seed(0)
    model = CNN(CNNConfig(activation=activation, init=init, dropout=0.5))
    assert torch.isfinite(model(torch.randn(4, 1, 8, 8))).all()


@pytest.mark.parametrize(
    ("init", "expected_std"),
    [
        ("small", 0.01),
        ("he", math.sqrt(2 / (64 * 9))),  # fan_in of a 64 -> 128 channel 3x3 conv
        ("xavier", math.sqrt(2 / (64 * 9 + 128 * 9))),  # fan_in + fan_out
    ],
)
def test_init_scale(init: str, expected_std: float) -> None:
    torch.manual_seed(0)
    conv = CNN(CNNConfig(init=init, width=64, depth=2)).blocks[1].conv  # 64 -> 128 channels
    assert conv.weight.std().item() == pytest.approx(expected_std, rel=0.05)


def test_probe_leaves_the_model_untouched() -> None:
    torch.manual_seed(0)
    model = CNN(CNNConfig(dropout=0.5))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(16, 1, 8, 8)
    rng_before = torch.get_rng_state()
    pre, post = model.probe_activations(x)
    assert [p.shape[1] for p in pre] == [16, 32]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng_before)


def test_integral_floats_are_accepted_for_integer_fields() -> None:
    cfg = CNNConfig(depth=3.0, width=8.0)
    assert (cfg.depth, cfg.width) == (3, 8)
    assert isinstance(cfg.depth, int)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"activation": "swish"}, "`activation` must be one of 'relu', .*, but got 'swish'"),
        ({"init": "orthogonal"}, "`init` must be one of 'small', 'xavier', 'he'"),
        ({"head": "attention"}, "`head` must be one of 'global_avg', 'flatten'"),
        ({"depth": 0}, r"`depth` must be an integer in \[1, 8\], but got 0"),
        ({"depth": 2.5}, r"`depth` must be an integer in \[1, 8\], but got 2.5"),
        ({"width": "16"}, "`width` must be an integer"),
        ({"dropout": 1.0}, r"`dropout` must be a number in \[0.0, 1.0\), but got 1.0"),
        ({"dropout": -0.1}, "`dropout` must be a number"),
        ({"batchnorm": "false"}, "`batchnorm` must be true/false, but got 'false'"),
        ({"num_classes": 1}, "`num_classes` must be an integer >= 2"),
    ],
)
def test_bad_config(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CNNConfig(**kwargs)
