from .configuration import AutoencodingMixerConfig, AutoencodingTransformerConfig
from .family import LLAMA_FAMILY, MIXER_FAMILY
from .modeling import AutoencoderOutput, AutoencodingMixer, AutoencodingTransformer, reconstruction_loss

FAMILIES = (
    MIXER_FAMILY,
    LLAMA_FAMILY,
)  # what models/__init__.py collects

__all__ = [
    "FAMILIES",
    "LLAMA_FAMILY",
    "MIXER_FAMILY",
    "AutoencoderOutput",
    "AutoencodingMixer",
    "AutoencodingMixerConfig",
    "AutoencodingTransformer",
    "AutoencodingTransformerConfig",
    "reconstruction_loss",
]
