"""`mixer_autoencoder` and `llama_autoencoder`: one-vector-bottleneck autoencoders of the same shape."""

from __future__ import annotations

from ..family import AUTOENCODE, Capabilities, Family, FlopCount, Knob, lm_head_flops
from ..llama.family import LLAMA_KNOBS, heads, llama_block_flops, llama_config_kwargs
from ..masked_mixer.family import MIXER_KNOBS, mixer_block_flops, mixer_config_kwargs, mixer_size_multiple
from .configuration import AutoencodingMixerConfig, AutoencodingTransformerConfig
from .modeling import AutoencodingMixer, AutoencodingTransformer

AUTOENCODER_KNOBS = (
    Knob("encoder_layers", int | None, None, "encoder depth; null means num_hidden_layers", minimum=1),
    Knob("decoder_layers", int | None, None, "decoder depth; null means num_hidden_layers", minimum=1),
    Knob("compression_dim", int | None, None, "bottleneck width; null keeps hidden_size", minimum=1),
)
DECODER_POSITION_EMBEDDING = Knob(
    "decoder_position_embedding",
    bool,
    True,
    "llama autoencoder: learned positions added to the decoder's input; "
    "false reproduces the paper's decoder, which gets no position signal",
)


def _depths(spec) -> int:
    """Blocks in both stacks (each defaults to num_hidden_layers)."""
    return (spec.encoder_layers or spec.num_hidden_layers) + (spec.decoder_layers or spec.num_hidden_layers)


def _bottleneck(spec, t: int) -> FlopCount:
    """compress d -> c and expand c -> d, once per sequence: per token, divided by t."""
    c = spec.compression_dim
    return FlopCount(dense=2 * 2 * spec.hidden_size * c / t if c else 0, token_mixing=0, attention=0, lm_head=0)


def _fields(spec) -> dict:
    return dict(
        encoder_layers=spec.encoder_layers, decoder_layers=spec.decoder_layers, compression_dim=spec.compression_dim
    )


# Autoencoders rebuild their input in one pass: they do not generate text.
_CAPABILITIES = dict(generates=False, cached_generation=False)

MIXER_FAMILY = Family(
    name="mixer_autoencoder",
    description="masked mixer autoencoder: encoder, one-vector bottleneck, decoder",
    config_class=AutoencodingMixerConfig,
    model_class=AutoencodingMixer,
    build_config=lambda spec, common: AutoencodingMixerConfig(**mixer_config_kwargs(spec), **_fields(spec), **common),
    flops=lambda spec, vocab, t: (
        _depths(spec) * mixer_block_flops(spec, t) + _bottleneck(spec, t) + lm_head_flops(spec, vocab)
    ),
    knobs=MIXER_KNOBS + AUTOENCODER_KNOBS,
    capabilities=Capabilities(positions_are_rows=True, **_CAPABILITIES),
    task=AUTOENCODE,
    auto={"AutoModel": AutoencodingMixer},
    standalone=True,
    size_multiple=mixer_size_multiple,
    learning_rate_group="mixer",
    colour="C0",
)

LLAMA_FAMILY = Family(
    name="llama_autoencoder",
    description="Llama autoencoder (transformers' decoder layers): encoder, one-vector bottleneck, decoder",
    config_class=AutoencodingTransformerConfig,
    model_class=AutoencodingTransformer,
    build_config=lambda spec, common: AutoencodingTransformerConfig(
        **llama_config_kwargs(spec),
        **_fields(spec),
        decoder_position_embedding=spec.decoder_position_embedding,
        **common,
    ),
    flops=lambda spec, vocab, t: (
        _depths(spec) * llama_block_flops(spec, t) + _bottleneck(spec, t) + lm_head_flops(spec, vocab)
    ),
    knobs=LLAMA_KNOBS + AUTOENCODER_KNOBS + (DECODER_POSITION_EMBEDDING,),
    capabilities=Capabilities(switchable_attention=True, **_CAPABILITIES),
    task=AUTOENCODE,
    auto={"AutoModel": AutoencodingTransformer},
    standalone=True,
    size_multiple=heads,
)
