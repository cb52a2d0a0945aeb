"""The built-in objective: a small CNN with batch normalisation on digits or CIFAR-10.

Entry point ``hpsearch.objectives.cnn:objective`` (``objective = "cnn"`` in a study file).
The study's searched values and its ``[fixed]`` table arrive as one ``params`` dict. Keys
and defaults (the fields of ``DataConfig``, ``CNNConfig`` and ``TrainConfig``, which
document each default's reason):

- data: ``dataset="digits"`` (or ``"cifar10"``), ``data_dir=None`` (CIFAR-10 folder),
  ``split_seed=0`` (the search seed: see :func:`prepare_params`), ``val_fraction=0.2``,
  ``preprocess="per_channel_mean"`` (``"mean_image"``, ``"standardize"``, ``"none"``),
  ``max_train=None``.
- model: ``depth=2``, ``width=16``, ``batchnorm=True``, ``activation="relu"``
  (``leaky_relu``, ``elu``, ``tanh``, ``sigmoid``), ``dropout=0.0``, ``init="he"``
  (``small``, ``xavier``), ``head="global_avg"`` (``flatten``).
- training: ``optimizer="sgd"`` (``adam``), ``lr=0.05`` for sgd / ``1e-3`` for adam,
  ``momentum=0.9``, ``nesterov=False``, ``weight_decay=0.0``, ``lr_decay=1.0`` (the lr is
  multiplied by it after every epoch), ``batch_size=64``, ``amp=False`` (CUDA only).
- ``device``: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or
  ``"mps"``; when absent, the worker's ``report.device`` (``--device``) decides.
- ``metric``: what is returned and reported per epoch:
  ``"val_loss"`` (default; validation cross-entropy, minimise), ``"val_accuracy"``
  (maximise) or ``"val_error"`` (``1 - val_accuracy``, minimise). The study's
  ``direction`` must match.

``PARAMS`` declares these keys (defaults, and the choices of the categorical ones) without
importing torch, and :func:`check_params` checks values as a trial would: a study file is
validated against both, so a misspelt parameter or value is refused before anything runs
instead of being searched over without effect. :func:`check_data` (``--dry-run``) also
loads the data and finds the device. ``METRICS``, ``SEEDED``, ``EXTRA``/``REQUIRES`` and
:func:`prepare_params` declare the rest the engine asks a built-in objective (see
:mod:`hpsearch.objectives`).
``save_path`` is no parameter (a study file cannot set it): only ``hpsearch best
--retrain --save PATH`` passes it, and the trained model is then written there with
``torch.save`` (see :func:`save_model`).

A diverged run (NaN/inf or exploding loss) is stopped early and returns a finite stand-in
no better than chance, so that studies stay sortable and the dashboard readable: for
``val_loss`` ``max(log(classes), worst validation loss seen)``, for ``val_accuracy``
``1 / classes``, for ``val_error`` ``1 - 1 / classes``. It is logged as ``diverged=True``
with a ``diverged_reason``; the call does not raise.

Trial attributes logged (``report.log``): ``diverged`` (+ ``diverged_reason``), final
``train_loss``/``train_accuracy``/``val_loss``/``val_accuracy``, the per-epoch curves
``curve_train_loss``/``curve_val_loss``/``curve_train_accuracy``/``curve_val_accuracy``,
``epochs_run``, the flags ``not_learning``/``flat_then_drop``/``overfit_gap``, the init
probe ``act_std_layer`` and (relu-like activations) ``dead_unit_fraction``, and
``device``, ``threads``, ``amp``, ``num_params``, ``metric``, ``seconds`` (training and
validation time) and ``images_per_second`` (training images over ``seconds``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpsearch.core.checks import Checker, CheckError, Constraint, Options
from hpsearch.core.trial_handle import SAVE_PATH_KEY

# Torch-free: a study file is validated against PARAMS before torch is imported.
from hpsearch.training.config import (
    ACTIVATIONS,
    DATASETS,
    DEVICE,
    HEADS,
    INITS,
    OPTIMIZERS,
    PREPROCESS,
    CNNConfig,
    DataConfig,
    TrainConfig,
)

if TYPE_CHECKING:
    from hpsearch.core.spec import StudySpec
    from hpsearch.training.data import Dataset
    from hpsearch.training.loop import EpochStats, FitResult
    from hpsearch.training.model import CNN

logger = logging.getLogger(__name__)

#: What the CNN can return (``metric``), and which way each is better: a study file's
#: ``metric`` and ``direction`` are checked against it.
METRICS = {"val_loss": "minimize", "val_accuracy": "maximize", "val_error": "minimize"}
#: Parameters that default to the search's seed: the train/validation split is the same
#: for every trial of a search, and for its ``hpsearch compare`` baselines.
SEEDED = ("split_seed",)
#: The pip extra that installs what training imports (import name: distribution); this
#: module imports without them, so a missing one is named before anything runs.
EXTRA = "hpsearch[cnn]"
REQUIRES = {"torch": "torch", "sklearn": "scikit-learn"}

#: Images the init probe looks at: enough for stable statistics, trivial to compute.
PROBE_IMAGES = 256

_DATA_KEYS = tuple(f.name for f in dataclasses.fields(DataConfig))
_TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig))
# The data decides these three; a study file setting them would contradict the data.
_DATA_DERIVED = ("in_channels", "image_size", "num_classes")
_MODEL_KEYS = tuple(f.name for f in dataclasses.fields(CNNConfig) if f.name not in _DATA_DERIVED)


@dataclass(frozen=True)
class Option:
    """One key the CNN accepts in ``params``: what it is when absent and, for a categorical
    one, the values it takes (``choices``; ``pattern`` where they are a pattern)."""

    default: Any
    choices: tuple[Any, ...] = ()
    pattern: Constraint | None = None

    @property
    def constraint(self) -> Constraint | None:
        """What a categorical option's value must be (of the same type: TOML's ``1`` is
        not ``true``); None for a non-categorical one (its config checks it)."""
        return self.pattern or (Options(self.choices) if self.choices else None)


def _declare() -> dict[str, Option]:
    """The CNN's parameters: the configs' fields (their defaults), the device and metric."""
    choices = {
        "dataset": DATASETS,
        "preprocess": PREPROCESS,
        "activation": ACTIVATIONS,
        "init": INITS,
        "head": HEADS,
        "optimizer": OPTIMIZERS,
    }
    fields = {
        f.name: f.default
        for cls in (DataConfig, CNNConfig, TrainConfig)
        for f in dataclasses.fields(cls)
        if f.name not in _DATA_DERIVED
    }
    return {
        **{name: Option(default, choices.get(name, ())) for name, default in fields.items()},
        # None: the worker's --device decides (report.device).
        "device": Option(None, DEVICE.options, DEVICE),
        "metric": Option("val_loss", tuple(METRICS)),
    }


#: What the CNN accepts, for validation before anything runs: every key of ``params``.
PARAMS = _declare()
PARAM_KEYS = tuple(PARAMS)


def objective(params: dict[str, Any], epochs: int, report: Any) -> float:
    """Train the CNN ``params`` describe for ``epochs`` epochs; return the chosen metric.

    Args:
        params: Searched values plus the study's fixed table (keys: ``PARAM_KEYS``).
        epochs: The stage's epoch budget.
        report: The trial's :class:`~hpsearch.core.trial_handle.Reporter`: called once per epoch
            (1-based) with the metric; ``report.seed`` seeds initialisation, dropout and
            batch order; ``report.threads`` caps torch's CPU threads; ``report.log``
            records the diagnostics.

    Returns:
        The metric after the last epoch, or the chance-level stand-in if training diverged.

    Raises:
        ValueError: for an unknown key or a bad value (the message names the key).
        TrialLost: from ``report``, unchanged, when the trial was taken away meanwhile.
    """
    import torch

    from hpsearch.training import diagnostics
    from hpsearch.training.data import load_data
    from hpsearch.training.loop import fit, probe_init, resolve_device
    from hpsearch.training.model import CNN

    params = dict(params)
    save_path = params.pop(SAVE_PATH_KEY, None)
    data_cfg, model_kwargs, train_cfg, device_name, metric = parse_params(params)
    torch.set_num_threads(max(1, int(report.threads)))
    asked: str = getattr(report, "device", "auto")  # --device; the file's device wins
    device = resolve_device(device_name or asked)
    data = load_data(data_cfg)
    model_cfg = CNNConfig(
        in_channels=data.in_channels,
        image_size=data.image_size,
        num_classes=data.num_classes,
        **model_kwargs,
    )
    # One seed for everything random in torch (init, dropout, on CPU and CUDA); the batch
    # order has its own generator seeded the same way inside fit.
    torch.manual_seed(report.seed)
    model = CNN(model_cfg).to(device)
    probe = probe_init(model, data.x_train[:PROBE_IMAGES].to(device))

    def on_epoch(stats: EpochStats) -> None:
        report(stats.epoch, _metric_value(metric, stats))

    result = fit(
        model, data, train_cfg, epochs, seed=report.seed, device=device, on_epoch=on_epoch
    )
    last = _chance(result, data.num_classes) if result.diverged else result.epochs[-1]
    value = _metric_value(metric, last)
    if result.diverged:
        # The last reported value matches the returned one, so pruners and curves agree.
        report(len(result.epochs) + 1, value)
    report.log(
        **_attrs(result, last),
        **probe,
        **diagnostics.curve_flags(
            result.step_losses,
            [e.train_accuracy for e in result.epochs],
            [e.val_accuracy for e in result.epochs],
            data.num_classes,
        ),
        device=device.type,
        threads=torch.get_num_threads(),
        num_params=sum(p.numel() for p in model.parameters()),
        metric=metric,
    )
    if save_path is not None:
        save_model(
            save_path, model, data, {"data": data_cfg, "model": model_cfg, "train": train_cfg}
        )
    return value


def save_model(path: str, model: CNN, data: Dataset, configs: dict[str, Any]) -> None:
    """Write the trained model: ``torch.save({"state_dict", "config", "preprocess"})``.

    ``config`` holds the data, model and train configs as dicts (``CNN(CNNConfig(
    **config["model"]))`` rebuilds the network), ``preprocess`` the ``shift`` and ``scale``
    the training split was normalised with (``x = (raw - shift) / scale``), which new
    images need too. Tensors are moved to the CPU so the file loads anywhere.
    """
    import torch

    torch.save(
        {
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "config": {name: dataclasses.asdict(cfg) for name, cfg in configs.items()},
            "preprocess": {"shift": data.shift.cpu(), "scale": data.scale.cpu()},
        },
        path,
    )


def parse_params(
    params: dict[str, Any],
) -> tuple[DataConfig, dict[str, Any], TrainConfig, str | None, str]:
    """Split ``params`` into the data config, model kwargs, train config, device, metric.

    Every value is validated here (by the config dataclasses), before anything is loaded;
    the :class:`~hpsearch.core.checks.CheckError` raised lists every bad value, of all configs.
    """
    unknown = sorted(set(params) - set(PARAM_KEYS))
    if unknown:
        raise ValueError(
            f"Unknown parameter(s) {', '.join(repr(k) for k in unknown)} for the built-in "
            f"CNN objective; known parameters: {', '.join(PARAM_KEYS)}."
        )
    c = Checker()
    metric = params.get("metric", "val_loss")
    c.check("metric", metric, Options(METRICS))
    device = params.get("device")
    if device is not None:
        c.check("device", device, DEVICE)
    configs: dict[type, Any] = {}  # a config of each class, by class
    # The model is validated now, not after the data has loaded.
    for cls, keys in (
        (DataConfig, _DATA_KEYS),
        (CNNConfig, _MODEL_KEYS),
        (TrainConfig, _TRAIN_KEYS),
    ):
        try:
            configs[cls] = cls(**{k: params[k] for k in keys if k in params})
        except CheckError as exc:
            c.problems.extend(exc.problems)
    c.raise_errors()
    model_kwargs = {k: params[k] for k in _MODEL_KEYS if k in params}
    return configs[DataConfig], model_kwargs, configs[TrainConfig], device, metric


def prepare_params(spec: StudySpec, params: dict[str, Any]) -> dict[str, Any]:
    """What the CNN takes from the search beyond its params, where ``params`` (the slot's
    and ``[fixed]``) leave it unset: the metric to return, the search seed (``SEEDED``:
    it fixes the train/validation split for every trial) and a relative ``data_dir``
    read against the study file's folder when it exists there."""
    out = {**params}
    for key in SEEDED:
        out.setdefault(key, spec.seed)
    out.setdefault("metric", spec.metric)
    data_dir = out.get("data_dir")
    if isinstance(data_dir, str) and not os.path.isabs(data_dir):
        beside = os.path.join(spec.base_dir, data_dir)
        if os.path.isdir(beside) and not os.path.isdir(data_dir):
            out["data_dir"] = beside
    return out


def check_params(params: dict[str, Any]) -> list[tuple[str, str]]:
    """``(key, problem)`` for what :func:`parse_params` refuses in ``params`` (torch-free:
    study-file validation asks this before anything is stored): every bad value."""
    try:
        parse_params(params)
    except CheckError as exc:
        return exc.problems
    return []


def check_data(params: dict[str, Any], device: str) -> list[tuple[str, str]]:
    """``(key, problem)`` for what a trial with ``params`` would fail on before training:
    the data does not load (a missing CIFAR-10 folder) or the device is not there. Loads
    the data (cached, as the trial's own load) and imports torch: for ``--dry-run``."""
    from hpsearch.training.data import load_data
    from hpsearch.training.loop import resolve_device

    problems = check_params(params)
    if problems:
        return problems
    data_cfg, _, _, device_name, _ = parse_params(params)
    try:
        load_data(data_cfg)
    except (OSError, ImportError, ValueError) as exc:
        problems.append(_blame(str(exc), "data_dir" if data_cfg.data_dir else "dataset"))
    try:
        resolve_device(device_name or device)
    except ValueError as exc:
        problems.append(("device", str(exc)))
    return problems


def _blame(message: str, default: str) -> tuple[str, str]:
    """The key a data-loading error names first ("`key` ..."), and the message without that
    key when it leads it; ``default`` when none is named. (The configs' own problems come
    with their keys: :class:`~hpsearch.core.checks.CheckError`.)"""
    named = re.match(r"`(\w+)`\s*", message)
    if named and named.group(1) in PARAMS:
        return named.group(1), message[named.end() :]
    named = re.match(r"`(\w+)\b", message)
    return (named.group(1) if named and named.group(1) in PARAMS else default), message


def _metric_value(metric: str, stats: EpochStats) -> float:
    if metric == "val_accuracy":
        return stats.val_accuracy
    if metric == "val_error":
        return 1.0 - stats.val_accuracy
    return stats.val_loss


def _chance(result: FitResult, num_classes: int) -> EpochStats:
    """Stand-in final metrics for a diverged run: chance accuracy, and a loss no lower
    than a uniform guess's or than the worst finite validation loss measured."""
    from hpsearch.training.loop import EpochStats

    worst = max([math.log(num_classes)] + [e.val_loss for e in result.epochs])
    acc = 1.0 / num_classes
    return EpochStats(len(result.epochs) + 1, worst, acc, worst, acc)


def _attrs(result: FitResult, last: EpochStats) -> dict[str, Any]:
    """Final metrics (``last``: for a diverged run, the chance-level stand-ins, since its
    weights are garbage), curves (what was measured) and throughput."""
    attrs: dict[str, Any] = {
        "diverged": result.diverged,
        "train_loss": last.train_loss,
        "train_accuracy": last.train_accuracy,
        "val_loss": last.val_loss,
        "val_accuracy": last.val_accuracy,
        "curve_train_loss": [e.train_loss for e in result.epochs],
        "curve_val_loss": [e.val_loss for e in result.epochs],
        "curve_train_accuracy": [e.train_accuracy for e in result.epochs],
        "curve_val_accuracy": [e.val_accuracy for e in result.epochs],
        "epochs_run": len(result.epochs),
        "seconds": result.seconds,
        "images_per_second": result.images / result.seconds if result.seconds > 0 else 0.0,
        "amp": result.amp,
    }
    if result.diverged:
        attrs["diverged_reason"] = result.diverged_reason
    return attrs
