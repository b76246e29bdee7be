"""masked_mixers: train, evaluate, compare and serve masked mixer language models.

Importing the package registers model_type "masked_mixer" with transformers' Auto classes, so
`AutoModelForCausalLM.from_pretrained(dir)` loads a saved mixer; the autoencoders
("mixer_autoencoder", "llama_autoencoder") load with `AutoModel.from_pretrained(dir)`.
"""

from .models import (
    AutoencodingMixer,
    AutoencodingMixerConfig,
    AutoencodingTransformer,
    AutoencodingTransformerConfig,
    MaskedMixerConfig,
    MaskedMixerForCausalLM,
    MaskedMixerModel,
)

__version__ = "0.1.0"
__all__ = [
    "AutoencodingMixer",
    "AutoencodingMixerConfig",
    "AutoencodingTransformer",
    "AutoencodingTransformerConfig",
    "MaskedMixerConfig",
    "MaskedMixerForCausalLM",
    "MaskedMixerModel",
    "__version__",
]
