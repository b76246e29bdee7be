"""Model architectures, one folder or file per family, registered with the Auto classes."""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .ablated_llama import AblatedLlamaConfig, AblatedLlamaForCausalLM, AblatedLlamaModel
from .autoencoder import AutoencodingMixer, AutoencodingMixerConfig, AutoencodingTransformer, AutoencodingTransformerConfig
from .bidirectional import BidirectionalLlamaConfig, BidirectionalLlamaLM, BidirectionalMixerConfig, BidirectionalMixerLM
from .linear_mixer import LinearMixerConfig, LinearMixerForCausalLM, LinearMixerModel
from .masked_mixer import MaskedMixerConfig, MaskedMixerForCausalLM, MaskedMixerModel
from .transfixer import TransfixerConfig, TransfixerForCausalLM, TransfixerModel

# config class -> (AutoModel class or None, AutoModelForCausalLM class or None)
REGISTRY = {
    MaskedMixerConfig: (MaskedMixerModel, MaskedMixerForCausalLM),
    AblatedLlamaConfig: (AblatedLlamaModel, AblatedLlamaForCausalLM),
    LinearMixerConfig: (LinearMixerModel, LinearMixerForCausalLM),
    TransfixerConfig: (TransfixerModel, TransfixerForCausalLM),
    # bidirectional models predict every token in place; AutoModelForCausalLM is where loaders look for an LM
    BidirectionalMixerConfig: (None, BidirectionalMixerLM),
    BidirectionalLlamaConfig: (None, BidirectionalLlamaLM),
    AutoencodingMixerConfig: (AutoencodingMixer, None),
    AutoencodingTransformerConfig: (AutoencodingTransformer, None),
}


def _register() -> None:
    """Make AutoConfig / AutoModel / AutoModelForCausalLM know every model_type of this package."""
    for config, (base, causal_lm) in REGISTRY.items():
        AutoConfig.register(config.model_type, config, exist_ok=True)
        if base is not None:
            AutoModel.register(config, base, exist_ok=True)
        if causal_lm is not None:
            AutoModelForCausalLM.register(config, causal_lm, exist_ok=True)


_register()

__all__ = [
    "AblatedLlamaConfig",
    "AblatedLlamaForCausalLM",
    "AblatedLlamaModel",
    "AutoencodingMixer",
    "AutoencodingMixerConfig",
    "AutoencodingTransformer",
    "AutoencodingTransformerConfig",
    "BidirectionalLlamaConfig",
    "BidirectionalLlamaLM",
    "BidirectionalMixerConfig",
    "BidirectionalMixerLM",
    "LinearMixerConfig",
    "LinearMixerForCausalLM",
    "LinearMixerModel",
    "MaskedMixerConfig",
    "MaskedMixerForCausalLM",
    "MaskedMixerModel",
    "TransfixerConfig",
    "TransfixerForCausalLM",
    "TransfixerModel",
]
