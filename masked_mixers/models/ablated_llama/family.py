"""`model.family: llama_ablated`: transformers' Llama modules with switchable norms, residuals, MLP."""

from __future__ import annotations

from ..family import ABLATION_SWITCHES, Capabilities, Family, FlopCount
from ..llama.family import LLAMA_KNOBS, heads, llama_block_flops, llama_config_kwargs
from ..masked_mixer.family import lm_head_flops
from .modeling import AblatedLlamaConfig, AblatedLlamaForCausalLM, AblatedLlamaModel


def _config(spec, common: dict) -> AblatedLlamaConfig:
    switches = {name: getattr(spec, name) for name in ABLATION_SWITCHES}
    return AblatedLlamaConfig(**switches, **llama_config_kwargs(spec), **common)


def _flops(spec, vocab_size: int, t: int) -> FlopCount:
    block = llama_block_flops(spec, t, feed_forward=spec.use_feed_forward)
    return spec.num_hidden_layers * block + lm_head_flops(spec, vocab_size)


FAMILY = Family(
    name="llama_ablated",
    description="transformers' Llama modules in a decoder whose layer norms, residuals or MLP can be switched off",
    config_class=AblatedLlamaConfig,
    model_class=AblatedLlamaForCausalLM,
    build_config=_config,
    flops=_flops,
    knobs=LLAMA_KNOBS + ABLATION_SWITCHES,
    capabilities=Capabilities(ablation_switches=ABLATION_SWITCHES, one_step_completion=True),
    auto={"AutoModel": AblatedLlamaModel, "AutoModelForCausalLM": AblatedLlamaForCausalLM},
    size_multiple=heads,
)
