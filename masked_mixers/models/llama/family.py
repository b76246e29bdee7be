"""The Llama family (`model.family: llama`) and the pieces other Llama-based families reuse."""

from __future__ import annotations

from transformers import LlamaConfig, LlamaForCausalLM

from ..family import DROPOUT, FF_MULT, NUM_HEADS, Capabilities, Family, FlopCount, Knob, lm_head_flops

INTERMEDIATE_SIZE = Knob(
    "intermediate_size", int | None, None, "MLP width; null means ff_mult * hidden_size", minimum=1
)
LLAMA_KNOBS = (NUM_HEADS, FF_MULT, INTERMEDIATE_SIZE, DROPOUT)
LLAMA_CAPABILITIES = Capabilities(cached_generation=True, one_step_completion=True, switchable_attention=True)


def llama_config_kwargs(spec) -> dict:
    """The LlamaConfig fields a spec sets (sizes come separately, in `common`); L is max_position_embeddings."""
    return dict(
        intermediate_size=spec.intermediate_size or spec.ff_mult * spec.hidden_size,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        max_position_embeddings=spec.seq_len,
        attention_dropout=spec.dropout,
    )


def llama_block_flops(spec, t: int, feed_forward: bool = True) -> FlopCount:
    """Forward FLOPs per token of one Llama block at length t (as many KV heads as heads)."""
    d = spec.hidden_size
    inner = spec.intermediate_size or spec.ff_mult * d
    dense = 2 * 4 * d * d + (2 * 3 * d * inner if feed_forward else 0)  # q, k, v, o; gate, up, down
    return FlopCount(dense=dense, token_mixing=0, attention=2 * 2 * t * d, lm_head=0)  # scores and values, per head


def llama_flops(spec, vocab_size: int, t: int) -> FlopCount:
    return spec.num_hidden_layers * llama_block_flops(spec, t) + lm_head_flops(spec, vocab_size)


def heads(spec) -> int:
    return spec.num_heads


FAMILY = Family(
    name="llama",
    description="transformers' own LlamaForCausalLM: the transformer baseline (rotary positions, RMSNorm, SwiGLU)",
    config_class=LlamaConfig,
    model_class=LlamaForCausalLM,
    build_config=lambda spec, common: LlamaConfig(**llama_config_kwargs(spec), **common),
    flops=llama_flops,
    knobs=LLAMA_KNOBS,
    capabilities=LLAMA_CAPABILITIES,
    size_multiple=heads,
)

__all__ = [
    "FAMILY",
    "LLAMA_CAPABILITIES",
    "LLAMA_KNOBS",
    "heads",
    "llama_block_flops",
    "llama_config_kwargs",
    "llama_flops",
]
