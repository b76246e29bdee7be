"""Analytic training FLOPs per token, and model FLOPs utilization (MFU).

Counted as matrix-multiply FLOPs (2 per multiply-add), the PaLM convention: dense layers cost
2 * (weights touched) per token forward, token mixing and attention cost what their t x t
products cost at the training length t = seq_len, and training = 3 x forward (the backward pass
computes the gradient of both operands of every product). Norms, activations, softmax, the loss
and the optimizer are not counted; they are the overhead that MFU exposes.

The masked mixing is counted over the full t x t block, zeros included, because that is what
runs: `torch.matmul` of the lower-triangular matrix does not skip the zero upper half (a
triangular kernel could halve the mixing FLOPs). Llama's attention scores and values are also
counted over the full t x t block, although PyTorch's causal SDPA kernels may skip some masked
tiles: for Llama the count can overstate the work done, never understate it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ModelSpec


@dataclass
class FlopCount:
    """Forward FLOPs per token, by part; `training` is 3 x their sum."""

    dense: int  # weight matrices inside the blocks (feature mixing, projections)
    token_mixing: int  # masked mixer: L x L products over positions
    attention: int  # Llama: Q K^T and (scores) V
    lm_head: int

    @property
    def forward(self) -> int:
        return self.dense + self.token_mixing + self.attention + self.lm_head

    @property
    def training(self) -> int:
        return 3 * self.forward


def _mixer_layer(spec: ModelSpec, t: int) -> tuple[int, int]:
    """(dense, token mixing) forward FLOPs per token of one mixer block."""
    d = spec.hidden_size
    dense = 2 * 2 * d * spec.ff_mult * d if spec.use_feed_forward else 0  # d -> ff*d -> d
    if spec.mixer_type == "flat":
        return dense, 2 * t * d  # one (t, t) @ (t, d) per sequence = 2 t^2 d, i.e. 2 t d per token
    if spec.mixer_type == "expanded":
        return dense, 2 * 2 * spec.expansion * t * d  # (e t, t) @ (t, d) then (t, e t) @ (e t, d)
    if spec.mixer_type == "multihead":
        return dense + 2 * 2 * d * d, 2 * t * d  # d -> d in and out; h heads of (t, t) @ (t, d/h)
    raise ValueError(f"unknown mixer_type {spec.mixer_type!r}")


def _llama_layer(spec: ModelSpec, t: int) -> tuple[int, int]:
    """(dense, attention) forward FLOPs per token of one Llama block (as many KV heads as heads)."""
    d = spec.hidden_size
    inner = spec.intermediate_size or spec.ff_mult * d
    dense = 2 * 4 * d * d + 2 * 3 * d * inner  # q, k, v, o; gate, up, down
    return dense, 2 * 2 * t * d  # scores (t, d/h) @ (d/h, t) and values (t, t) @ (t, d/h), per head


def forward_flops_per_token(spec: ModelSpec, vocab_size: int, seq_len: int | None = None) -> FlopCount:
    """Forward FLOPs per token of `spec` at training length `seq_len` (default: spec.seq_len)."""
    t = seq_len or spec.seq_len
    if spec.family == "mixer":
        dense, mixing = _mixer_layer(spec, t)
        attention = 0
    elif spec.family == "llama":
        dense, attention = _llama_layer(spec, t)
        mixing = 0
    else:
        raise ValueError(f"no FLOP formula for family {spec.family!r}")
    n = spec.num_hidden_layers
    return FlopCount(dense=n * dense, token_mixing=n * mixing, attention=n * attention, lm_head=2 * spec.hidden_size * vocab_size)


def mfu(training_flops_per_token: float, tokens_per_second: float, peak_flops_per_second: float) -> float:
    """Model FLOPs utilization: achieved model FLOP/s over the measured matmul peak FLOP/s."""
    return training_flops_per_token * tokens_per_second / peak_flops_per_second
