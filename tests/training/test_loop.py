"""The training loop: config checks, evaluation mode, probes, divergence, callbacks."""

from __future__ import annotations

import pytest
import torch

from hpsearch.training.config import DEFAULT_LR, CNNConfig, DataConfig, TrainConfig
from hpsearch.training.data import load_data
from hpsearch.training.loop import (
    EpochStats,
    evaluate,
    fit,
    make_optimizer,
    probe_init,
    resolve_device,
)
from hpsearch.training.model import CNN

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits():
    return load_data(DataConfig())


def make_model(seed: int = 0, **kwargs) -> CNN:
    torch.manual_seed(seed)
    return CNN(CNNConfig(**kwargs))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_lr_defaults_per_optimizer(optimizer: str) -> None:
    cfg = TrainConfig(optimizer=optimizer)
    assert cfg.lr == DEFAULT_LR[optimizer]
    opt = make_optimizer(make_model(), cfg)
    assert type(opt).__name__.lower() == optimizer


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"optimizer": "rmsprop"}, "`optimizer` must be one of 'sgd', 'adam'"),
        ({"lr": 0.0}, r"`lr` must be a number in \(0.0, inf\), but got 0.0"),
        ({"lr": float("nan")}, "`lr` must be a number"),
        ({"momentum": 1.0}, r"`momentum` must be a number in \[0.0, 1.0\)"),
        ({"lr_decay": 0.0}, r"`lr_decay` must be a number in \(0.0, 1.0\]"),
        ({"lr_decay": 1.5}, "`lr_decay` must be a number"),
        ({"weight_decay": -1e-4}, "`weight_decay` must be a number"),
        ({"batch_size": 0}, "`batch_size` must be an integer >= 1"),
        ({"nesterov": True, "momentum": 0.0}, "`momentum > 0` must hold for `nesterov = true`"),
        ({"amp": 1}, "`amp` must be true/false"),
    ],
)
def test_bad_train_config(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_resolve_device() -> None:
    assert resolve_device("cpu") == CPU
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError, match="`device` must be one of 'auto', 'cpu', 'cuda'"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_asking_for_missing_cuda_is_an_error(name: str) -> None:
    with pytest.raises(ValueError, match="no CUDA device"):
        resolve_device(name)


def test_a_gpu_past_the_last_is_an_error() -> None:
    with pytest.raises(ValueError, match="`device = 'cuda:99'` was asked for, but torch sees"):
        resolve_device("cuda:99")


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "CPU", 0])
def test_names_torch_does_not_know_are_refused(name) -> None:
    with pytest.raises(ValueError, match="'cuda', 'cuda:N', 'mps', but got"):
        resolve_device(name)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="needs a machine without MPS")
def test_asking_for_missing_mps_is_an_error() -> None:
    with pytest.raises(ValueError, match="no MPS device"):
        resolve_device("mps")


def test_evaluate_uses_running_statistics_and_restores_train_mode(digits) -> None:
    model = make_model()
    model.blocks[0].bn.running_mean.fill_(100.0)  # eval mode must use these
    loss, acc = evaluate(model, digits.x_val, digits.y_val)
    assert model.training
    model.eval()
    with torch.no_grad():
        logits = model(digits.x_val)
    expected = torch.nn.functional.cross_entropy(logits, digits.y_val).item()
    assert loss == pytest.approx(expected, rel=1e-5)
    assert acc == pytest.approx((logits.argmax(1) == digits.y_val).double().mean().item())


def test_probe_shows_collapse_of_small_init_without_batchnorm(digits) -> None:
    x = digits.x_train[:256]
    collapsed = probe_init(
        make_model(init="small", activation="tanh", batchnorm=False, depth=3), x
    )
    stds = collapsed["act_std_layer"]
    assert stds[0] > stds[1] > stds[2] and stds[2] < 1e-3
    assert "dead_unit_fraction" not in collapsed  # not defined for tanh
    normalised = probe_init(make_model(init="small", activation="tanh", depth=3), x)
    assert min(normalised["act_std_layer"]) > 0.1  # batch norm restores the scale


def test_dead_units_are_counted_per_channel(digits) -> None:
    model = make_model(batchnorm=False)
    with torch.no_grad():
        model.blocks[0].conv.weight[:4].fill_(-1.0)  # inputs are centred, but not all
        model.blocks[0].conv.bias[:4].fill_(-100.0)  # ... this kills 4 of 16 channels
    stats = probe_init(model, digits.x_train[:256])
    assert stats["dead_unit_fraction"] == pytest.approx(4 / (16 + 32))


def test_fit_reports_every_epoch_and_learns(digits) -> None:
    seen: list[EpochStats] = []
    result = fit(make_model(), digits, TrainConfig(), 2, seed=0, device=CPU, on_epoch=seen.append)
    assert [s.epoch for s in seen] == [1, 2]
    assert result.epochs == seen and not result.diverged
    assert seen[-1].val_accuracy > 0.5
    steps_per_epoch = len(digits.x_train) // 64
    assert len(result.step_losses) == 2 * steps_per_epoch
    assert result.images == 2 * steps_per_epoch * 64


def test_fit_stops_at_divergence_without_raising(digits) -> None:
    seen: list[EpochStats] = []
    cfg = TrainConfig(lr=1e3)
    result = fit(make_model(), digits, cfg, 3, seed=0, device=CPU, on_epoch=seen.append)
    assert result.diverged and seen == []
    assert result.diverged_reason.startswith("train loss")
    assert "epoch 1 step" in result.diverged_reason


def test_exceptions_from_the_callback_propagate(digits) -> None:
    class Stop(Exception):
        pass

    def on_epoch(stats: EpochStats) -> None:
        raise Stop

    with pytest.raises(Stop):
        fit(make_model(), digits, TrainConfig(), 3, seed=0, device=CPU, on_epoch=on_epoch)


def test_batch_larger_than_the_data_is_clamped() -> None:
    data = load_data(DataConfig(max_train=10))
    result = fit(
        make_model(),
        data,
        TrainConfig(batch_size=512),
        1,
        seed=0,
        device=CPU,
        on_epoch=lambda s: None,
    )
    assert result.images == 10
