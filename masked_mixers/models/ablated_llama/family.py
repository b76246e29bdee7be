"""`model.family: llama_ablated`: transformers' Llama modules with switchable norms, residuals, MLP,
and the MLP replaceable by attention (`feed_forward_attention`)."""

from __future__ import annotations

from ..family import ABLATION_KNOBS, ABLATION_SWITCHES, Capabilities, Family, FlopCount, Knob, lm_head_flops
from ..llama.family import LLAMA_KNOBS, heads, llama_block_flops, llama_config_kwargs
from .modeling import AblatedLlamaConfig, AblatedLlamaForCausalLM, AblatedLlamaModel

# the three removals every ablatable family has, and this family's replacement of the MLP by attention
FEED_FORWARD_ATTENTION = Knob(
    "feed_forward_attention",
    bool,
    False,
    "true replaces each block's MLP with a second (pre-norm, residual) self-attention",
)
SWITCHES = ABLATION_SWITCHES + (FEED_FORWARD_ATTENTION.name,)


def _config(spec, common: dict) -> AblatedLlamaConfig:
    if spec.feed_forward_attention and not spec.use_feed_forward:
        raise ValueError("feed_forward_attention replaces the feed-forward, so it needs use_feed_forward true")
    switches = {name: getattr(spec, name) for name in SWITCHES}
    return AblatedLlamaConfig(**switches, **llama_config_kwargs(spec), **common)


def _flops(spec, vocab_size: int, t: int) -> FlopCount:
    block = llama_block_flops(spec, t, feed_forward=spec.use_feed_forward and not spec.feed_forward_attention)
    if spec.feed_forward_attention:
        block = block + llama_block_flops(spec, t, feed_forward=False)  # a second q, k, v, o and its scores and values
    return spec.num_hidden_layers * block + lm_head_flops(spec, vocab_size)


FAMILY = Family(
    name="llama_ablated",
    description="transformers' Llama modules in a decoder whose layer norms, residuals or MLP can be switched off",
    config_class=AblatedLlamaConfig,
    model_class=AblatedLlamaForCausalLM,
    build_config=_config,
    flops=_flops,
    knobs=LLAMA_KNOBS + ABLATION_KNOBS + (FEED_FORWARD_ATTENTION,),
    capabilities=Capabilities(ablation_switches=SWITCHES, one_step_completion=True, switchable_attention=True),
    auto={"AutoModel": AblatedLlamaModel, "AutoModelForCausalLM": AblatedLlamaForCausalLM},
    standalone=True,
    size_multiple=heads,
)
