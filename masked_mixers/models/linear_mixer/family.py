"""`model.family: linear_mixer`: fully linear, ReLU-head and near-linear masked mixers."""

from __future__ import annotations

from typing import Literal

from ..family import FF_MULT, Capabilities, Family, FlopCount, Knob, lm_head_flops
from ..masked_mixer.family import MIXER_CAPABILITIES
from .configuration import LINEAR_VARIANTS, LinearMixerConfig
from .modeling import LinearMixerForCausalLM, LinearMixerModel

LINEAR_VARIANT = Knob(
    "linear_variant",
    Literal[LINEAR_VARIANTS],
    "linear",
    "linear (collapsible to one layer), relu (ReLU before the head) or near_linear",
)


def _flops(spec, vocab_size: int, t: int) -> FlopCount:
    d = spec.hidden_size
    dense = 2 * 2 * d * spec.ff_mult * d if spec.linear_variant == "near_linear" else 0
    block = FlopCount(dense=dense, token_mixing=2 * t * d, attention=0, lm_head=0)
    return spec.num_hidden_layers * block + lm_head_flops(spec, vocab_size)


FAMILY = Family(
    name="linear_mixer",
    description="masked mixer without norms: fully linear (collapsible to one layer), ReLU head, or near-linear",
    config_class=LinearMixerConfig,
    model_class=LinearMixerForCausalLM,
    build_config=lambda spec, common: LinearMixerConfig(
        seq_len=spec.seq_len, variant=spec.linear_variant, ff_mult=spec.ff_mult, **common
    ),
    flops=_flops,
    knobs=(LINEAR_VARIANT, FF_MULT),
    capabilities=Capabilities(**{**MIXER_CAPABILITIES.__dict__, "ablation_switches": (), "triangular_tiles": False}),
    auto={"AutoModel": LinearMixerModel, "AutoModelForCausalLM": LinearMixerForCausalLM},
    learning_rate_group="mixer",
    colour="C0",
)
