"""Train and evaluate the CNN epoch by epoch, stopping early when the loss diverges.

The loop is written for many short trials: data lives on the device as whole tensors and
batches are gathered by a seeded index permutation; per-step statistics are accumulated on
the device and read back once per epoch (plus a cheap divergence check every
``CHECK_EVERY`` steps), because a host sync per step costs more than a small step on a GPU.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from hpsearch.core.checks import Checker, Interval
from hpsearch.training import diagnostics
from hpsearch.training.config import DEFAULT_LR, DEVICE, TrainConfig
from hpsearch.training.data import Dataset
from hpsearch.training.model import CNN, RELU_FAMILY

logger = logging.getLogger(__name__)

#: Steps between divergence checks. Each check is one host sync; 25 keeps that cost
#: negligible while stopping a diverged trial within a fraction of an epoch.
CHECK_EVERY = 25

#: Validation batch size: no gradients are kept, so large batches are just faster.
EVAL_BATCH = 1024


@dataclass(frozen=True)
class EpochStats:
    """Metrics after one epoch. Training loss/accuracy are running means over the epoch's
    steps (as most training loops print them): free, but taken while the weights moved and
    with dropout on, so slightly pessimistic against validation."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float


@dataclass
class FitResult:
    """Everything :func:`fit` measured. ``epochs`` holds only completed epochs; a diverged
    run stops inside epoch ``len(epochs) + 1``."""

    epochs: list[EpochStats] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)  # finite steps, in order
    diverged_reason: str | None = None
    seconds: float = 0.0
    images: int = 0  # training images processed (each epoch counts again)
    amp: bool = False

    @property
    def diverged(self) -> bool:
        return self.diverged_reason is not None


def resolve_device(name: str) -> torch.device:
    """``"auto"`` means CUDA when available, else CPU. Asking for a device the machine does
    not have (``cuda``, ``cuda:N`` past the last GPU, ``mps``) is an error rather than a
    silent fall-back, so timings are never mislabelled."""
    Checker().require("device", name, DEVICE)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"`device = {name!r}` was asked for, but torch sees no CUDA device.")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(
                f"`device = {name!r}` was asked for, but torch sees {count} CUDA device(s) "
                f"(cuda:0 to cuda:{count - 1})."
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"`device = {name!r}` was asked for, but torch sees no MPS device.")
    return device


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser ``cfg`` names, over all of the model's parameters."""
    lr = cfg.lr if cfg.lr is not None else DEFAULT_LR[cfg.optimizer]  # (as TrainConfig set it)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        model.parameters(),
        lr=lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay,
    )


def probe_init(model: CNN, x: torch.Tensor) -> dict[str, float | list[float]]:
    """Activation statistics of the untrained model on one batch.

    Returns ``act_std_layer`` (std of each block's activations: values shrinking towards
    zero layer after layer are the collapse a too-small init causes without batch norm)
    and, for relu-like activations, ``dead_unit_fraction`` (the fraction of channels whose
    pre-activation is never positive anywhere on the batch: a relu unit like that gets no
    gradient and may never recover).
    """
    pre, post = model.probe_activations(x)
    stats: dict[str, float | list[float]] = {
        "act_std_layer": [float(a.float().std(correction=0)) for a in post],
    }
    if model.cfg.activation in RELU_FAMILY:
        # A channel is alive if any image, at any position, drives it above zero.
        alive = [(h > 0).any(dim=0).any(dim=-1).any(dim=-1) for h in pre]
        channels = sum(a.numel() for a in alive)
        stats["dead_unit_fraction"] = float(sum(int((~a).sum()) for a in alive) / channels)
    return stats


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``(x, y)``, in eval mode.

    Eval mode makes batch norm use its running statistics (what a deployed model uses) and
    turns dropout off; the model is put back in train mode afterwards, whatever it was.
    """
    model.eval()
    try:
        loss = torch.zeros((), device=x.device)
        correct = torch.zeros((), device=x.device, dtype=torch.long)
        for i in range(0, len(x), EVAL_BATCH):
            logits = model(x[i : i + EVAL_BATCH]).float()
            yb = y[i : i + EVAL_BATCH]
            loss += F.cross_entropy(logits, yb, reduction="sum")
            correct += (logits.argmax(dim=1) == yb).sum()
        return float(loss) / len(x), int(correct) / len(x)
    finally:
        model.train()


def fit(
    model: CNN,
    data: Dataset,
    cfg: TrainConfig,
    epochs: int,
    *,
    seed: int,
    device: torch.device,
    on_epoch: Callable[[EpochStats], None],
) -> FitResult:
    """Train ``model`` for up to ``epochs`` epochs, calling ``on_epoch`` after each.

    Stops early (``result.diverged``) at the first training loss that is NaN, infinite or
    above :func:`diagnostics.explosion_limit`, or a non-finite validation loss. Exceptions
    raised by ``on_epoch`` (``TrialLost`` in particular) propagate unchanged.

    Args:
        model: The network, already on ``device`` (its weights are trained in place).
        data: The split; its tensors are copied to ``device`` once.
        cfg: Optimisation settings.
        epochs: Epoch budget (>= 1).
        seed: Seeds the batch order (and, through the caller's ``torch.manual_seed``,
            dropout); the same seed gives the same batches.
        device: Where to train.
        on_epoch: Receives each completed epoch's :class:`EpochStats`.
    """
    Checker().require("epochs", epochs, Interval(int, 1, None))
    start = time.perf_counter()
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    x_val, y_val = data.x_val.to(device), data.y_val.to(device)
    n = len(x_train)
    # drop_last: a tail batch of one image breaks batch norm's statistics; the batch order
    # is reshuffled each epoch, so no image is left out for good.
    batch = min(cfg.batch_size, n)
    steps = n // batch

    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16
    if use_amp and not torch.cuda.is_bf16_supported():
        amp_dtype = torch.float16
    # float16 needs loss scaling against gradient underflow; bfloat16 has float32's range.
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    optimizer = make_optimizer(model, cfg)
    generator = torch.Generator().manual_seed(seed)
    result = FitResult(amp=use_amp)
    limit = math.inf  # set from the first step's loss
    recent: list[float] = []
    model.train()

    for epoch in range(1, epochs + 1):
        order = torch.randperm(n, generator=generator).to(device)
        losses = torch.empty(steps, device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        checked = 0
        for step in range(steps):
            idx = order[step * batch : (step + 1) * batch]
            xb, yb = x_train[idx], y_train[idx]
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                logits = model(xb)
                loss = F.cross_entropy(logits.float(), yb)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            losses[step] = loss.detach()
            correct += (logits.argmax(dim=1) == yb).sum()
            if epoch == 1 and step == 0:
                limit = diagnostics.explosion_limit(float(loss.detach()), data.num_classes)
            if (step + 1) % CHECK_EVERY == 0 or step + 1 == steps:
                # Prepend the last steps already checked, so explosion windows run across
                # check and epoch boundaries.
                values = recent + losses[checked : step + 1].tolist()
                bad = diagnostics.find_divergence(values, limit)
                if bad is not None:
                    at = checked + bad.index - len(recent)
                    result.step_losses.extend(losses[:at].tolist())
                    result.images += (at + 1) * batch
                    where = f"epoch {epoch} step {at + 1}"
                    result.diverged_reason = bad.describe("train loss", where)
                    break
                recent = values[max(0, len(values) - diagnostics.EXPLODE_WINDOW + 1) :]
                checked = step + 1
        if result.diverged:
            break
        result.step_losses.extend(losses.tolist())
        result.images += steps * batch
        train_loss = float(losses.mean())
        val_loss, val_acc = evaluate(model, x_val, y_val)
        if not math.isfinite(val_loss):
            result.diverged_reason = f"val loss {val_loss} after epoch {epoch}"
            break
        stats = EpochStats(epoch, train_loss, int(correct) / (steps * batch), val_loss, val_acc)
        result.epochs.append(stats)
        for group in optimizer.param_groups:
            group["lr"] *= cfg.lr_decay
        on_epoch(stats)
    result.seconds = time.perf_counter() - start
    if result.diverged:
        logger.info("stopped early: %s", result.diverged_reason)
    return result
