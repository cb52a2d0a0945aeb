"""Learning-curve diagnostics: lists of floats in, flags out.

Kept free of torch (and of numpy) so that the rules which label a trial as diverged, not
learning or badly initialised can be unit-tested on hand-made curves in milliseconds, and so
that the report code could re-derive them from stored curves without importing the trainer.

The training loop feeds these functions the per-step training losses (one float per
optimiser step) rather than the per-epoch means: coarse stages run one or two epochs, and a
two-point curve cannot show a plateau followed by a drop.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

#: A loss above this many times ``max(initial loss, log(num_classes))`` counts as an
#: explosion. ``log(num_classes)`` is the loss of a uniform guess; a healthy run, even with a
#: high learning rate, stays within a small multiple of it, while a diverging one grows
#: without bound within a few steps.
EXPLODE_FACTOR = 3.0

#: The explosion test applies to the median of this many consecutive steps, not to single
#: steps: with batch norm, a high learning rate often throws a few steps to 3-5x the
#: initial loss and then recovers (measured on digits: Adam at lr 0.1 spikes to 11 at step
#: 3 and ends at 81% accuracy), while a real divergence stays up. The median ignores any
#: spike shorter than half the window, however tall.
EXPLODE_WINDOW = 10

#: A run whose smoothed loss fell by less than this fraction of its start is "not learning".
NOT_LEARNING_DROP = 0.05

#: For ``flat_then_drop``: the first ``FLAT_FRACTION`` of the curve must stay within
#: ``NOT_LEARNING_DROP`` of the start, and the end must be at least ``LATE_DROP`` below it.
FLAT_FRACTION = 0.3
LATE_DROP = 0.2


def explosion_limit(initial_loss: float, num_classes: int) -> float:
    """The loss above which training is declared diverged.

    Args:
        initial_loss: The loss of the first training step, before any update.
        num_classes: Number of classes; ``log(num_classes)`` is chance-level cross-entropy.

    Returns:
        ``EXPLODE_FACTOR * max(initial_loss, log(num_classes))``. Taking the max keeps a run
        that starts unusually high (a large init) from being flagged for merely staying
        there, and keeps a run that starts unusually low from being flagged for noise.
    """
    start = initial_loss if math.isfinite(initial_loss) else 0.0
    return EXPLODE_FACTOR * max(start, math.log(num_classes))


@dataclass(frozen=True)
class Divergence:
    """Where a loss curve first left the finite, bounded range.

    Attributes:
        index: 0-based position of the first bad value.
        value: The bad value (NaN, inf or a finite value above the limit).
        kind: ``"nan"``, ``"inf"`` or ``"exploded"``.
    """

    index: int
    value: float
    kind: str

    def describe(self, what: str, where: str | None = None) -> str:
        """A one-line reason such as ``"train loss nan at epoch 1 step 12"``.

        Args:
            what: The curve's name.
            where: The position in the caller's terms; default ``"step {index + 1}"``.
        """
        where = f"step {self.index + 1}" if where is None else where
        if self.kind == "exploded":
            return f"{what} exploded to a median of {self.value:.4g} at {where}"
        return f"{what} {self.kind} at {where}"


def find_divergence(
    losses: Sequence[float], limit: float, window: int = EXPLODE_WINDOW
) -> Divergence | None:
    """Where the losses first diverge; ``None`` if they do not.

    Args:
        losses: Loss per step, in order.
        limit: See :func:`explosion_limit`.
        window: Number of consecutive steps whose median must exceed ``limit``.

    Returns:
        The first NaN or infinite loss, or the first step that ends a ``window`` of steps
        whose median is above ``limit`` (``value`` is then that median), whichever comes
        first.
    """
    for i, value in enumerate(losses):
        if math.isnan(value):
            return Divergence(i, value, "nan")
        if math.isinf(value):
            return Divergence(i, value, "inf")
        if i + 1 >= window:
            median = statistics.median(losses[i + 1 - window : i + 1])
            if median > limit:
                return Divergence(i, median, "exploded")
    return None


def _window(values: Sequence[float]) -> int:
    """Smoothing width: a tenth of the curve (at least one point), to average out the
    batch-to-batch noise of per-step losses without hiding a trend."""
    return max(1, len(values) // 10)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def not_learning(
    losses: Sequence[float],
    chance_loss: float | None = None,
    min_drop: float = NOT_LEARNING_DROP,
) -> bool:
    """Whether the smoothed loss at the end is within ``min_drop`` (relative) of its start,
    or of ``chance_loss`` when that is lower.

    The usual cause is a learning rate too small (or too large, bouncing at chance level),
    or a saturated network. Comparing with chance as well catches a run that starts above
    chance (a large init), falls to chance level and stays there. Curves with fewer than
    two points cannot show learning and are not flagged.

    Args:
        losses: Loss per step (or per epoch), in order.
        chance_loss: The loss of a uniform guess, ``log(num_classes)`` for cross-entropy.
        min_drop: Relative drop the end must reach to count as learning.
    """
    if len(losses) < 2:
        return False
    k = _window(losses)
    start, end = _mean(losses[:k]), _mean(losses[-k:])
    if chance_loss is not None:
        start = min(start, chance_loss)
    return end > (1.0 - min_drop) * start


def flat_then_drop(
    losses: Sequence[float],
    flat_fraction: float = FLAT_FRACTION,
    flat_tol: float = NOT_LEARNING_DROP,
    late_drop: float = LATE_DROP,
) -> bool:
    """Whether the curve stays on a plateau at first and only then falls.

    The signature of a bad initialisation: with weights too small the signal (and the
    gradient) vanishes through the layers, the loss sits at chance level until the weights
    have grown enough, then drops. With a good init the loss falls from the first steps.

    Args:
        losses: Loss per step (or per epoch), in order.
        flat_fraction: The leading fraction of the curve that must be flat.
        flat_tol: Relative distance from the start that still counts as flat.
        late_drop: Relative drop below the start the end of the curve must reach.
    """
    n_flat = int(len(losses) * flat_fraction)
    if n_flat < 2 or len(losses) - n_flat < 2:
        return False
    k = _window(losses)
    start = _mean(losses[:k])
    head = losses[:n_flat]
    smoothed_head = [_mean(head[i : i + k]) for i in range(0, len(head) - k + 1)]
    flat = all(abs(v - start) <= flat_tol * start for v in smoothed_head)
    end = _mean(losses[-k:])
    return flat and end < (1.0 - late_drop) * start


def overfit_gap(train_accuracy: Sequence[float], val_accuracy: Sequence[float]) -> float:
    """Final training accuracy minus final validation accuracy (0.0 for empty curves).

    Positive and growing means the network memorises the training split; a large gap at
    the end of a fine stage suggests more regularisation (dropout, weight decay).
    """
    if not train_accuracy or not val_accuracy:
        return 0.0
    return float(train_accuracy[-1] - val_accuracy[-1])


def curve_flags(
    step_losses: Sequence[float],
    train_accuracy: Sequence[float],
    val_accuracy: Sequence[float],
    num_classes: int,
) -> dict[str, float | bool]:
    """All curve flags of one run, ready for ``report.log``.

    Args:
        step_losses: Training loss of every optimiser step, finite values only (a diverged
            run's curve stops where its divergence was detected).
        train_accuracy: Per-epoch training accuracy.
        val_accuracy: Per-epoch validation accuracy.
        num_classes: Number of classes, for the chance-level loss ``log(num_classes)``.
    """
    return {
        "not_learning": not_learning(step_losses, math.log(num_classes)),
        "flat_then_drop": flat_then_drop(step_losses),
        "overfit_gap": overfit_gap(train_accuracy, val_accuracy),
    }
