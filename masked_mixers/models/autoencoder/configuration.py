"""Configurations of the one-vector-bottleneck autoencoders (Badger, arXiv 2409.01482, sec. autoencoders).

Each autoencoder is an encoder stack, a bottleneck (the encoder's last-position hidden state,
optionally projected down to `compression_dim` and back), and a decoder stack that sees only that
vector repeated at every position. The configs extend the language-model configs of the same
family, so the blocks (`MixerBlock`, `LlamaDecoderLayer`) are built from them unchanged.

`encoder_layers` / `decoder_layers` default to `num_hidden_layers`: "8 layers" means 8 + 8, as
in the paper's tables.
"""

from huggingface_hub.dataclasses import strict
from transformers import LlamaConfig

from ..masked_mixer.configuration import MaskedMixerConfig


def _resolve_layers(config) -> None:
    """Fill unset encoder/decoder depths from num_hidden_layers."""
    if config.encoder_layers is None:
        config.encoder_layers = config.num_hidden_layers
    if config.decoder_layers is None:
        config.decoder_layers = config.num_hidden_layers


def _validate_autoencoder(config) -> None:
    for name in ("encoder_layers", "decoder_layers"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.compression_dim is not None and not 1 <= config.compression_dim <= config.hidden_size:
        raise ValueError(
            f"compression_dim must be between 1 and hidden_size ({config.hidden_size}), got {config.compression_dim}"
        )


@strict
class AutoencodingMixerConfig(MaskedMixerConfig):
    """A masked mixer autoencoder: all `MaskedMixerConfig` fields describe the blocks of both stacks.

    The bottleneck is the hidden state at position seq_len - 1 of the encoder (see modeling.py).
    """

    model_type = "mixer_autoencoder"

    encoder_layers: int | None = None
    decoder_layers: int | None = None
    compression_dim: int | None = None

    def __post_init__(self, **kwargs):
        _resolve_layers(self)
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        super().validate_architecture()
        _validate_autoencoder(self)


@strict
class AutoencodingTransformerConfig(LlamaConfig):
    """A Llama autoencoder: all `LlamaConfig` fields describe the decoder layers of both stacks.

    `max_position_embeddings` is the longest input L. `decoder_position_embedding` adds a learned
    absolute position embedding to the repeated bottleneck before the decoder. Without it the
    decoder cannot tell positions apart: every position holds the same vector, attention over
    identical values returns that value whatever the (rotary) scores are, and the decoder can
    only predict one distribution for all positions (a bag of words). The paper's reference
    transformer autoencoder had no such embedding; set it to false to reproduce that setup.
    """

    model_type = "llama_autoencoder"

    encoder_layers: int | None = None
    decoder_layers: int | None = None
    compression_dim: int | None = None
    decoder_position_embedding: bool = True

    def __post_init__(self, **kwargs):
        _resolve_layers(self)
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        super().validate_architecture()
        _validate_autoencoder(self)


__all__ = ["AutoencodingMixerConfig", "AutoencodingTransformerConfig"]
