"""The GPT-2 family (`model.family: gpt2`): transformers' own GPT2LMHeadModel.

Positions are learned absolute embeddings indexed by position id. transformers' generate()
derives position ids from the attention mask (cumsum - 1), so a left-padded prompt's first real
token sits at position 0 as in training; a plain forward without `position_ids` uses the column,
which is what packed and right-padded training and evaluation see. Every pad key is masked by
transformers' own causal mask (`masking_utils.create_causal_mask`), which tests/test_contract.py
checks by perturbation with left and right padding. GPT2LMHeadModel's `loss_type` is None in
transformers 5.24, which made the HF Trainer count its labelled tokens unshifted;
`trainer.declare_shifted_loss` sets it to "ForCausalLM" before training (tests/test_contract.py
checks the Trainer's eval_loss against `evaluation.evaluate` for every family).
"""

from __future__ import annotations

from transformers import GPT2Config, GPT2LMHeadModel

from ..family import Capabilities, Family, FlopCount, lm_head_flops
from ..llama.family import LLAMA_KNOBS, heads

GPT2_KNOBS = LLAMA_KNOBS  # num_heads, ff_mult, intermediate_size, dropout: the same knobs, GPT-2's names below


def gpt2_config_kwargs(spec, common: dict) -> dict:
    """GPT2Config's own names for a spec's sizes (its constructor does not take hidden_size & co.).

    One `dropout` sets GPT-2's three (residual, embedding, attention; transformers defaults them to
    0.1, the other families to the spec's 0.0). The activation stays GPT-2's tanh GELU (`gelu_new`).
    """
    common = dict(common)
    return dict(
        n_embd=common.pop("hidden_size"),
        n_layer=common.pop("num_hidden_layers"),
        n_head=spec.num_heads,
        n_inner=spec.intermediate_size or spec.ff_mult * spec.hidden_size,
        n_positions=spec.seq_len,
        resid_pdrop=spec.dropout,
        embd_pdrop=spec.dropout,
        attn_pdrop=spec.dropout,
        bos_token_id=common.pop("bos_token_id", None),
        eos_token_id=common.pop("eos_token_id", None),
        **common,  # vocab_size, tie_word_embeddings, pad_token_id
    )


def gpt2_block_flops(spec, t: int) -> FlopCount:
    """Forward FLOPs per token of one GPT-2 block at length t: qkv + output projection, a two-matrix MLP, attention."""
    d = spec.hidden_size
    inner = spec.intermediate_size or spec.ff_mult * d
    dense = (
        2 * 4 * d * d + 2 * 2 * d * inner
    )  # c_attn (d -> 3d), c_proj (d -> d); c_fc (d -> inner), c_proj (inner -> d)
    return FlopCount(dense=dense, token_mixing=0, attention=2 * 2 * t * d, lm_head=0)


def gpt2_flops(spec, vocab_size: int, t: int) -> FlopCount:
    return spec.num_hidden_layers * gpt2_block_flops(spec, t) + lm_head_flops(spec, vocab_size)


FAMILY = Family(
    name="gpt2",
    description="transformers' own GPT2LMHeadModel: the GPT-style baseline (learned positions, LayerNorm, GELU MLP)",
    config_class=GPT2Config,
    model_class=GPT2LMHeadModel,
    build_config=lambda spec, common: GPT2Config(**gpt2_config_kwargs(spec, common)),
    flops=gpt2_flops,
    knobs=GPT2_KNOBS,
    capabilities=Capabilities(cached_generation=True, switchable_attention=True),
    size_multiple=heads,
    learning_rate_group="gpt2",
)

__all__ = ["FAMILY", "GPT2_KNOBS", "gpt2_block_flops", "gpt2_config_kwargs", "gpt2_flops"]
