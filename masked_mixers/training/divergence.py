"""The one definition of a diverged training run, shared by the trainer, `ablate` and `reproduce`.

A run diverged at the first logged step whose training loss is NaN/inf, or above
DIVERGENCE_FACTOR (3) times the loss of a uniform guess over the vocabulary, ln(V) nats per
token. A freshly initialised language model scores about ln(V), and a trained one below it, so a
loss three times that is no longer learning the data; the reference depends on the vocabulary
only, never on where a run's own loss happened to be at its first logged step (with a large
learning rate that loss can already be far gone). A run that diverged has no final loss: what it
logged from that step on is not a result.

The trainer applies the first clause at every step (trainer.NonFiniteLoss stops a run at its
first NaN/inf loss, and the ablation sweep records that step as a NaN point); the second clause
is applied to the logged history, since an objective that sums several losses (objectives/mtp.py)
may legitimately log more than ln(V).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import takewhile

DIVERGENCE_FACTOR = 3.0


def divergence_threshold(vocab_size: int, factor: float = DIVERGENCE_FACTOR) -> float:
    """The loss above which a run has diverged: `factor` x ln(vocab_size)."""
    if vocab_size < 2 or not (math.isfinite(factor) and factor > 1):
        raise ValueError(f"vocab_size must be >= 2 and factor a finite number > 1, got {vocab_size} and {factor}")
    return factor * math.log(vocab_size)


def is_diverged_loss(loss: float, threshold: float) -> bool:
    """True for a NaN/inf loss or one above `threshold` (divergence_threshold)."""
    return not math.isfinite(loss) or loss > threshold


def diverged_at(points: Sequence[tuple[int, float]], vocab_size: int, factor: float = DIVERGENCE_FACTOR) -> int | None:
    """The step of the first (step, loss) point that diverged (module docstring), or None."""
    threshold = divergence_threshold(vocab_size, factor)
    return next((step for step, loss in points if is_diverged_loss(loss, threshold)), None)


def healthy_points(
    points: Sequence[tuple[int, float]], vocab_size: int, factor: float = DIVERGENCE_FACTOR
) -> list[tuple[int, float]]:
    """The points logged before the run diverged (all of them if it did not)."""
    threshold = divergence_threshold(vocab_size, factor)
    return list(takewhile(lambda point: not is_diverged_loss(point[1], threshold), points))


__all__ = ["DIVERGENCE_FACTOR", "diverged_at", "divergence_threshold", "healthy_points", "is_diverged_loss"]
