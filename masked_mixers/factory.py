"""One place that turns a `ModelSpec` into a model of either family, and counts its parameters.

The transformer baseline is transformers' own `LlamaForCausalLM`: attention is never
reimplemented here, so the comparison is against the real thing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedConfig, PreTrainedModel

from .config import ModelSpec
from .errors import UserError
from .models import (
    BidirectionalLlamaConfig,
    BidirectionalLlamaLM,
    BidirectionalMixerConfig,
    BidirectionalMixerLM,
    LinearMixerConfig,
    LinearMixerForCausalLM,
    MaskedMixerConfig,
    MaskedMixerForCausalLM,
    TransfixerConfig,
    TransfixerForCausalLM,
)

@dataclass
class ParameterCount:
    """Parameters of a model, split the way papers usually quote them."""

    total: int
    embedding: int
    non_embedding: int

    def __str__(self) -> str:
        return f"{self.total / 1e6:.2f}M parameters ({self.non_embedding / 1e6:.2f}M non-embedding)"


def count_parameters(model: nn.Module) -> ParameterCount:
    """Unique parameters (a tied head counts once); embedding = input embedding (+ untied head)."""
    seen: dict[int, int] = {}
    for p in model.parameters():
        seen[id(p)] = p.numel()
    total = sum(seen.values())
    emb = {id(p): p.numel() for m in (model.get_input_embeddings(), model.get_output_embeddings()) if m is not None for p in m.parameters()}
    embedding = sum(emb.values())
    return ParameterCount(total=total, embedding=embedding, non_embedding=total - embedding)


def _checked(build: Callable[[], PreTrainedConfig]) -> PreTrainedConfig:
    try:
        return build()
    except Exception as err:  # the config's own validators explain what is wrong
        raise UserError(f"model: {str(err).strip().splitlines()[-1].strip()}") from None


def _mixer_config(spec: ModelSpec, common: dict, config_class: type = MaskedMixerConfig) -> PreTrainedConfig:
    return _checked(
        lambda: config_class(
            seq_len=spec.seq_len,
            mixer_type=spec.mixer_type,
            num_heads=spec.num_heads,
            expansion=spec.expansion,
            ff_mult=spec.ff_mult,
            dropout=spec.dropout,
            use_layer_norm=spec.use_layer_norm,
            use_residual=spec.use_residual,
            use_feed_forward=spec.use_feed_forward,
            **common,
        )
    )


def _linear_mixer_config(spec: ModelSpec, common: dict) -> PreTrainedConfig:
    if not (spec.use_layer_norm and spec.use_residual and spec.use_feed_forward) or spec.dropout:
        raise UserError("model: ablation switches and dropout are not available for family 'linear_mixer'")
    return _checked(lambda: LinearMixerConfig(seq_len=spec.seq_len, variant=spec.linear_variant, ff_mult=spec.ff_mult, **common))


def _llama_config(spec: ModelSpec, common: dict, config_class: type = LlamaConfig) -> PreTrainedConfig:
    if spec.hidden_size % spec.num_heads:
        raise UserError(f"model.num_heads: hidden_size {spec.hidden_size} is not divisible by {spec.num_heads} heads")
    if not (spec.use_layer_norm and spec.use_residual and spec.use_feed_forward):
        raise UserError(f"model: ablation switches are not available for family '{spec.family}'")
    return config_class(
        intermediate_size=spec.intermediate_size or spec.ff_mult * spec.hidden_size,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        max_position_embeddings=spec.seq_len,
        attention_dropout=spec.dropout,
        **common,
    )


# family -> (config builder, model class). New architectures add one line here.
FAMILIES: dict[str, tuple[Callable[[ModelSpec, dict], PreTrainedConfig], type[PreTrainedModel]]] = {
    "mixer": (_mixer_config, MaskedMixerForCausalLM),
    "llama": (_llama_config, LlamaForCausalLM),
    "linear_mixer": (_linear_mixer_config, LinearMixerForCausalLM),
    "transfixer": (partial(_llama_config, config_class=TransfixerConfig), TransfixerForCausalLM),
    "bidirectional_mixer": (partial(_mixer_config, config_class=BidirectionalMixerConfig), BidirectionalMixerLM),
    "bidirectional_llama": (partial(_llama_config, config_class=BidirectionalLlamaConfig), BidirectionalLlamaLM),
}


def _family(spec: ModelSpec):
    if spec.family not in FAMILIES:
        raise UserError(f"model.family: unknown family {spec.family!r} (choose from {', '.join(FAMILIES)})")
    return FAMILIES[spec.family]


def model_config(spec: ModelSpec, vocab_size: int | None = None, **token_ids) -> PreTrainedConfig:
    """The Hugging Face config for `spec` (vocab_size from the tokenizer when the spec leaves it null).

    token_ids: pad_token_id, bos_token_id, eos_token_id of the tokenizer the model is used with.
    """
    vocab = spec.vocab_size or vocab_size
    if not vocab:
        raise UserError("model.vocab_size: not set and no tokenizer to take it from")
    if vocab_size and spec.vocab_size and vocab_size > spec.vocab_size:
        raise UserError(
            f"model.vocab_size: the tokenizer has {vocab_size} tokens but the model only {spec.vocab_size}; "
            "raise model.vocab_size or leave it null"
        )
    common = dict(
        vocab_size=vocab,
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_hidden_layers,
        tie_word_embeddings=spec.tie_word_embeddings,
        **{k: v for k, v in token_ids.items() if v is not None},
    )
    return _family(spec)[0](spec, common)


def build_model(spec: ModelSpec, vocab_size: int | None = None, **token_ids) -> tuple[PreTrainedModel, ParameterCount]:
    """Build a freshly initialised model of `spec.family` and count its parameters."""
    config = model_config(spec, vocab_size, **token_ids)
    model = _family(spec)[1](config)
    return model, count_parameters(model)
