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

FAMILIES = (
    MIXER_FAMILY,
    LLAMA_FAMILY,
)  # what models/__init__.py collects

__all__ = [
    "FAMILIES",
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
