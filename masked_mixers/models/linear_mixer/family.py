"""`model.family: linear_mixer`: fully linear, ReLU-head and near-linear masked mixers."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Literal

from ..family import FF_MULT, Capabilities, Family, FlopCount, Knob, lm_head_flops
from ..masked_mixer.family import MIXER_CAPABILITIES, mixer_block_flops
from .configuration import LINEAR_VARIANTS, VARIANT_SWITCHES, LinearMixerConfig
from .modeling import LinearMixerForCausalLM, LinearMixerModel

LINEAR_VARIANT = Knob(
    "linear_variant",
    Literal[LINEAR_VARIANTS],
    "linear",
    "linear (collapsible to one layer), relu (ReLU before the head), near_linear (the paper's: causal "
    "conv-GELU-conv over positions) or near_linear_ff (a variant: a GELU feature feed-forward per block)",
)


def _flops(spec, vocab_size: int, t: int) -> FlopCount:
    """The masked mixer block's count with the switches the variant sets (near_linear: two L x L mixings)."""
    switches = SimpleNamespace(
        hidden_size=spec.hidden_size, ff_mult=spec.ff_mult, **VARIANT_SWITCHES[spec.linear_variant]
    )
    return spec.num_hidden_layers * mixer_block_flops(switches, t) + lm_head_flops(spec, vocab_size)


FAMILY = Family(
    name="linear_mixer",
    description="masked mixer without norms or feature feed-forward: fully linear (collapsible to one layer), "
    "ReLU head, or near-linear (conv-GELU-conv over positions)",
    config_class=LinearMixerConfig,
    model_class=LinearMixerForCausalLM,
    build_config=lambda spec, common: LinearMixerConfig(
        seq_len=spec.seq_len, variant=spec.linear_variant, ff_mult=spec.ff_mult, **common
    ),
    flops=_flops,
    knobs=(LINEAR_VARIANT, FF_MULT),
    capabilities=Capabilities(**{**MIXER_CAPABILITIES.__dict__, "ablation_switches": (), "triangular_tiles": False}),
    auto={"AutoModel": LinearMixerModel, "AutoModelForCausalLM": LinearMixerForCausalLM},
    standalone=True,
    learning_rate_group="mixer",
    colour="C0",
)
