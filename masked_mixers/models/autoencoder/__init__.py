from .configuration import AutoencodingMixerConfig, AutoencodingTransformerConfig
from .modeling import AutoencoderOutput, AutoencodingMixer, AutoencodingTransformer, reconstruction_loss

__all__ = [
    "AutoencoderOutput",
    "AutoencodingMixer",
    "AutoencodingMixerConfig",
    "AutoencodingTransformer",
    "AutoencodingTransformerConfig",
    "reconstruction_loss",
]
