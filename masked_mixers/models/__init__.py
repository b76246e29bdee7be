"""Model architectures, one folder or file per family, registered with the Auto classes."""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .autoencoder import (
    AutoencodingMixer,
    AutoencodingMixerConfig,
    AutoencodingTransformer,
    AutoencodingTransformerConfig,
)
from .masked_mixer import MaskedMixerConfig, MaskedMixerForCausalLM, MaskedMixerModel


def _register() -> None:
    """Make the Auto classes know "masked_mixer" (AutoModel, AutoModelForCausalLM) and the autoencoders (AutoModel)."""
    AutoConfig.register("masked_mixer", MaskedMixerConfig, exist_ok=True)
    AutoModel.register(MaskedMixerConfig, MaskedMixerModel, exist_ok=True)
    AutoModelForCausalLM.register(MaskedMixerConfig, MaskedMixerForCausalLM, exist_ok=True)
    for config, model in ((AutoencodingMixerConfig, AutoencodingMixer), (AutoencodingTransformerConfig, AutoencodingTransformer)):
        AutoConfig.register(config.model_type, config, exist_ok=True)
        AutoModel.register(config, model, exist_ok=True)


_register()

__all__ = [
    "AutoencodingMixer",
    "AutoencodingMixerConfig",
    "AutoencodingTransformer",
    "AutoencodingTransformerConfig",
    "MaskedMixerConfig",
    "MaskedMixerForCausalLM",
    "MaskedMixerModel",
]
