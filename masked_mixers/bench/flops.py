"""Analytic training FLOPs per token, and model FLOPs utilization (MFU).

Counted as matrix-multiply FLOPs (2 per multiply-add), the PaLM convention: dense layers cost
2 * (weights touched) per token forward, token mixing and attention cost what their t x t
products cost at the training length t = seq_len, and training = 3 x forward (the backward pass
computes the gradient of both operands of every product). Norms, activations, softmax, the loss
and the optimizer are not counted; they are the overhead that MFU exposes.

Each family counts its own (its package's `family.py`, `Family.flops`). The masked mixing is
counted over the full t x t block, zeros included, because that is what runs: `torch.matmul` of
the lower-triangular matrix does not skip the zero upper half (a triangular kernel could halve
the mixing FLOPs). Llama's attention scores and values are also counted over the full t x t block,
although PyTorch's causal SDPA kernels may skip some masked tiles: for Llama the count can
overstate the work done, never understate it.
"""

from __future__ import annotations

from ..models import FAMILIES, FlopCount
from ..runs.config import ModelSpec


def forward_flops_per_token(spec: ModelSpec, vocab_size: int, seq_len: int | None = None) -> FlopCount:
    """Forward FLOPs per token of `spec` at training length `seq_len` (default: spec.seq_len), as its family
    counts them."""
    if spec.family not in FAMILIES:
        raise ValueError(f"no family {spec.family!r}")
    return FAMILIES[spec.family].flops(spec, vocab_size, seq_len or spec.seq_len)


def mfu(training_flops_per_token: float, tokens_per_second: float, peak_flops_per_second: float) -> float:
    """Model FLOPs utilization: achieved model FLOP/s over the measured matmul peak FLOP/s."""
    return training_flops_per_token * tokens_per_second / peak_flops_per_second
