from .family import LLAMA_FAMILY, MIXER_FAMILY
from .modeling import (
    BidirectionalLlamaConfig,
    BidirectionalLlamaLM,
    BidirectionalMixerConfig,
    BidirectionalMixerLM,
    bidirectional_loss,
    combine_streams,
    reverse_real_tokens,
)

__all__ = [
    "LLAMA_FAMILY",
    "MIXER_FAMILY",
    "BidirectionalLlamaConfig",
    "BidirectionalLlamaLM",
    "BidirectionalMixerConfig",
    "BidirectionalMixerLM",
    "bidirectional_loss",
    "combine_streams",
    "reverse_real_tokens",
]
