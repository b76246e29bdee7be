from .configuration import AutoencodingMixerConfig, AutoencodingTransformerConfig
from .family import LLAMA_FAMILY, MIXER_FAMILY
from .modeling import AutoencoderOutput, AutoencodingMixer, AutoencodingTransformer, reconstruction_loss

__all__ = [
    "LLAMA_FAMILY",
    "MIXER_FAMILY",
    "AutoencoderOutput",
    "AutoencodingMixer",
    "AutoencodingMixerConfig",
    "AutoencodingTransformer",
    "AutoencodingTransformerConfig",
    "reconstruction_loss",
]
