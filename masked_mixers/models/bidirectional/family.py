"""`bidirectional_mixer` and `bidirectional_llama`: two causal streams, every token predicted from both sides."""

from __future__ import annotations

import dataclasses

from ..family import Capabilities, Family, lm_head_flops
from ..llama.family import LLAMA_KNOBS, heads, llama_block_flops, llama_config_kwargs
from ..masked_mixer.family import (
    MIXER_CAPABILITIES,
    MIXER_KNOBS,
    mixer_block_flops,
    mixer_config_kwargs,
    mixer_size_multiple,
)
from .modeling import BidirectionalLlamaConfig, BidirectionalLlamaLM, BidirectionalMixerConfig, BidirectionalMixerLM

# Neither generates text left to right; each predicts token n in place from both sides.
_BIDIRECTIONAL = dict(
    generates=False,
    cached_generation=False,
    slides_past_context=False,
    predicts_in_place=True,
    ablation_switches=(),
    one_step_completion=False,
    compiled_decoding=False,
    triangular_tiles=False,
)

MIXER_FAMILY = Family(
    name="bidirectional_mixer",
    description="two masked mixer streams (one reading the text reversed); token n predicted from both sides",
    config_class=BidirectionalMixerConfig,
    model_class=BidirectionalMixerLM,
    build_config=lambda spec, common: BidirectionalMixerConfig(**mixer_config_kwargs(spec), **common),
    flops=lambda spec, vocab, t: 2 * spec.num_hidden_layers * mixer_block_flops(spec, t) + lm_head_flops(spec, vocab),
    knobs=MIXER_KNOBS,
    capabilities=dataclasses.replace(MIXER_CAPABILITIES, **_BIDIRECTIONAL),
    auto={"AutoModelForCausalLM": BidirectionalMixerLM},  # where loaders look for a language model
    standalone=True,
    size_multiple=mixer_size_multiple,
    learning_rate_group="mixer",
    colour="C0",
)

LLAMA_FAMILY = Family(
    name="bidirectional_llama",
    description="two causal Llama streams (one reading the text reversed); token n predicted from both sides",
    config_class=BidirectionalLlamaConfig,
    model_class=BidirectionalLlamaLM,
    build_config=lambda spec, common: BidirectionalLlamaConfig(**llama_config_kwargs(spec), **common),
    flops=lambda spec, vocab, t: 2 * spec.num_hidden_layers * llama_block_flops(spec, t) + lm_head_flops(spec, vocab),
    knobs=LLAMA_KNOBS,
    capabilities=Capabilities(switchable_attention=True, **_BIDIRECTIONAL),
    auto={"AutoModelForCausalLM": BidirectionalLlamaLM},
    standalone=True,
    size_multiple=heads,
)
