"""The training-compute budget (`train.max_flops`): each model's step limit from its own FLOP count.

A wall-clock cap on a shared machine measures the machine's load as much as the model (on a busy
2-core machine 300 s gave a mixer 251 steps and Llama 120). A FLOPs budget gives every model the
same compute whatever the load: each model trains the whole steps its analytic training FLOPs per
step fit into. The budget becomes a step limit before training starts, so the learning-rate
schedule decays to it and a resumed run stops at the same step. `train.warmup_ratio` makes warmup
a fraction of that limit (`warmup_steps`), so a model the budget gives fewer steps does not spend
a larger share of them warming up (warmup_steps is absolute: counted from max_steps it can be half
a short run).

The count is the one `masked-mixers bench` reports (bench/flops.py, each family's `Family.flops`):
matrix-multiply FLOPs, 2 per multiply-add, training = 3 x forward, per token at the training length
L, times the tokens of one optimizer step (batch_size x gradient_accumulation_steps x processes x
L; every position is computed, so padding counts). Model FLOPs, as MFU counts them: gradient
checkpointing's recomputation is not added, so it does not change a model's budget. The last step
of an epoch may hold fewer micro-batches than gradient_accumulation_steps; it is counted as whole.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import UserError
from ..runs.config import ModelSpec, TrainConfig
from ..runs.factory import family

# objectives whose forward is one pass of the model, as the count assumes (completion replaces
# half the hidden states by a vector, computing the same products); mtp runs n passes or heads
COUNTED_OBJECTIVES = ("clm", "completion")


def tokens_per_step(spec: ModelSpec, train: TrainConfig, world_size: int = 1) -> int:
    """Tokens one optimizer step computes, over all processes."""
    return train.batch_size * train.gradient_accumulation_steps * max(world_size, 1) * spec.seq_len


def training_flops_per_step(spec: ModelSpec, train: TrainConfig, vocab_size: int, world_size: int = 1) -> float | None:
    """Analytic training FLOPs of one optimizer step; None where they are not counted (see module docstring)."""
    fam = family(spec.family)
    if fam.flops is None or train.objective not in COUNTED_OBJECTIVES:
        return None
    per_token = fam.flops(spec, vocab_size, spec.seq_len).training
    return per_token * tokens_per_step(spec, train, world_size)


@dataclass(frozen=True)
class StepLimit:
    """The step the run ends at unless max_seconds comes first, and which limit set it."""

    max_steps: int
    stopped_by: str  # "max_steps" or "max_flops"


def check_countable(spec: ModelSpec, train: TrainConfig) -> None:
    """With max_flops set, the run's FLOPs must be counted: checked before any data is read."""
    if train.max_flops is None:
        return
    fam = family(spec.family)
    if fam.flops is None:
        why = f"family {spec.family!r} has no FLOP count"
    elif train.objective not in COUNTED_OBJECTIVES:
        why = f"objective {train.objective!r} is not counted (only {', '.join(COUNTED_OBJECTIVES)})"
    else:
        return
    raise UserError(f"train.max_flops: {why}; budget this run by max_steps or max_seconds instead")


def step_limit(spec: ModelSpec, train: TrainConfig, flops_per_step: float | None) -> StepLimit:
    """min(max_steps, the whole steps max_flops pays for); a budget under one step is one line."""
    if train.max_flops is None:
        return StepLimit(train.max_steps, "max_steps")
    check_countable(spec, train)
    steps = int(train.max_flops // flops_per_step)
    if steps < 1:
        raise UserError(
            f"train.max_flops: {train.max_flops:.3g} is less than one training step of family {spec.family!r} "
            f"({flops_per_step:.3g} FLOPs at this batch and seq_len); raise it"
        )
    return StepLimit(steps, "max_flops") if steps <= train.max_steps else StepLimit(train.max_steps, "max_steps")


def warmup_steps(train: TrainConfig, steps: int) -> int:
    """Warmup steps of a run whose step limit is `steps` (max_steps, or what max_flops gives this model):
    train.warmup_ratio of the run's own steps when set (rounded, at least 1 when the ratio is > 0),
    else train.warmup_steps as written."""
    if train.warmup_ratio is None:
        return train.warmup_steps
    return max(1, round(train.warmup_ratio * steps)) if train.warmup_ratio > 0 else 0


__all__ = [
    "COUNTED_OBJECTIVES",
    "StepLimit",
    "check_countable",
    "step_limit",
    "tokens_per_step",
    "training_flops_per_step",
    "warmup_steps",
]
