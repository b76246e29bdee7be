"""The masked mixer family (`model.family: mixer`) and the pieces other mixer families reuse."""

from __future__ import annotations

from typing import Literal

from ..family import (
    ABLATION_KNOBS,
    ABLATION_SWITCHES,
    DROPOUT,
    FF_MULT,
    NUM_HEADS,
    Capabilities,
    Family,
    FlopCount,
    Knob,
    default_label,
    lm_head_flops,
)
from .configuration import MIXER_TYPES, MaskedMixerConfig
from .modeling import MaskedMixerForCausalLM, MaskedMixerModel

MIXER_TYPE = Knob(
    "mixer_type",
    Literal[MIXER_TYPES],
    "flat",
    "token mixing: one L x L matrix (flat), expanded, or one per head (multihead)",
)
EXPANSION = Knob("expansion", int, 2, "expanded mixers: the mixing goes through expansion x L positions", minimum=1)
MIXER_KNOBS = (MIXER_TYPE, NUM_HEADS, EXPANSION, FF_MULT, DROPOUT)

# Positions are mixing-matrix rows, there is no positional encoding, and the cache slides past L.
MIXER_CAPABILITIES = Capabilities(
    positions_are_rows=True,
    cached_generation=True,
    slides_past_context=True,
    ablation_switches=ABLATION_SWITCHES,
    one_step_completion=True,
    triangular_tiles=True,
    compiled_decoding=True,
    continuous_batching=True,
)


def mixer_config_kwargs(spec) -> dict:
    """The MaskedMixerConfig fields a spec sets (sizes come separately, in `common`)."""
    return dict(
        seq_len=spec.seq_len,
        mixer_type=spec.mixer_type,
        num_heads=spec.num_heads,
        expansion=spec.expansion,
        ff_mult=spec.ff_mult,
        dropout=spec.dropout,
        use_layer_norm=spec.use_layer_norm,
        use_residual=spec.use_residual,
        use_feed_forward=spec.use_feed_forward,
    )


def mixer_block_flops(spec, t: int) -> FlopCount:
    """Forward FLOPs per token of one mixer block at length t (no LM head)."""
    d = spec.hidden_size
    dense = 2 * 2 * d * spec.ff_mult * d if spec.use_feed_forward else 0  # d -> ff*d -> d
    kind = getattr(spec, "mixer_type", "flat")
    if kind == "flat":
        mixing = 2 * t * d  # one (t, t) @ (t, d) per sequence = 2 t^2 d, i.e. 2 t d per token
    elif kind == "expanded":
        mixing = 2 * 2 * spec.expansion * t * d  # (e t, t) @ (t, d) then (t, e t) @ (e t, d)
    elif kind == "multihead":
        dense, mixing = dense + 2 * 2 * d * d, 2 * t * d  # d -> d in and out; h heads of (t, t) @ (t, d/h)
    else:
        raise ValueError(f"unknown mixer_type {kind!r}")
    return FlopCount(dense=dense, token_mixing=mixing, attention=0, lm_head=0)


def mixer_flops(spec, vocab_size: int, t: int) -> FlopCount:
    return spec.num_hidden_layers * mixer_block_flops(spec, t) + lm_head_flops(spec, vocab_size)


def mixer_size_multiple(spec) -> int:
    return spec.num_heads if spec.mixer_type == "multihead" else 1


FAMILY = Family(
    name="mixer",
    description="the masked mixer: learned L x L token mixing, masked lower-triangular, then a feed-forward",
    config_class=MaskedMixerConfig,
    model_class=MaskedMixerForCausalLM,
    build_config=lambda spec, common: MaskedMixerConfig(**mixer_config_kwargs(spec), **common),
    flops=mixer_flops,
    knobs=MIXER_KNOBS + ABLATION_KNOBS,
    capabilities=MIXER_CAPABILITIES,
    auto={"AutoModel": MaskedMixerModel, "AutoModelForCausalLM": MaskedMixerForCausalLM},
    size_multiple=mixer_size_multiple,
    standalone=True,
    learning_rate_group="mixer",
    colour="C0",
    label=lambda spec: default_label(f"mixer-{spec.mixer_type}", spec),
)

__all__ = ["FAMILY", "MIXER_CAPABILITIES", "MIXER_KNOBS", "mixer_block_flops", "mixer_config_kwargs", "mixer_flops"]
