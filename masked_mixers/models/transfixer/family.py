"""`model.family: transfixer`: a Llama layer whose attention output also passes through masked mixing."""

from __future__ import annotations

from ..family import Capabilities, Family, FlopCount, lm_head_flops
from ..llama.family import LLAMA_KNOBS, heads, llama_block_flops, llama_config_kwargs
from .modeling import TransfixerConfig, TransfixerForCausalLM, TransfixerModel


def _flops(spec, vocab_size: int, t: int) -> FlopCount:
    mixing = FlopCount(dense=0, token_mixing=2 * t * spec.hidden_size, attention=0, lm_head=0)  # one flat mixing
    return spec.num_hidden_layers * (llama_block_flops(spec, t) + mixing) + lm_head_flops(spec, vocab_size)


FAMILY = Family(
    name="transfixer",
    description="Llama decoder layers whose attention output also goes through a masked L x L token mixing",
    config_class=TransfixerConfig,
    model_class=TransfixerForCausalLM,
    build_config=lambda spec, common: TransfixerConfig(**llama_config_kwargs(spec), **common),
    flops=_flops,
    knobs=LLAMA_KNOBS,
    capabilities=Capabilities(positions_are_rows=True, one_step_completion=True, switchable_attention=True),
    auto={"AutoModel": TransfixerModel, "AutoModelForCausalLM": TransfixerForCausalLM},
    standalone=True,
    size_multiple=heads,
)
