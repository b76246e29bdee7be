"""Model architectures, one folder or file per family, registered with the Auto classes."""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .bidirectional import BidirectionalLlamaConfig, BidirectionalLlamaLM, BidirectionalMixerConfig, BidirectionalMixerLM
from .linear_mixer import LinearMixerConfig, LinearMixerForCausalLM, LinearMixerModel
from .masked_mixer import MaskedMixerConfig, MaskedMixerForCausalLM, MaskedMixerModel
from .transfixer import TransfixerConfig, TransfixerForCausalLM, TransfixerModel

# model_type -> (config, trunk or None, language model)
_AUTO_MODELS = {
    "masked_mixer": (MaskedMixerConfig, MaskedMixerModel, MaskedMixerForCausalLM),
    "linear_mixer": (LinearMixerConfig, LinearMixerModel, LinearMixerForCausalLM),
    "transfixer": (TransfixerConfig, TransfixerModel, TransfixerForCausalLM),
    # bidirectional models predict every token in place; AutoModelForCausalLM is where loaders look for an LM
    "bidirectional_mixer": (BidirectionalMixerConfig, None, BidirectionalMixerLM),
    "bidirectional_llama": (BidirectionalLlamaConfig, None, BidirectionalLlamaLM),
}


def _register() -> None:
    """Make AutoConfig / AutoModel / AutoModelForCausalLM know our model types."""
    for model_type, (config, trunk, lm) in _AUTO_MODELS.items():
        AutoConfig.register(model_type, config, exist_ok=True)
        if trunk is not None:
            AutoModel.register(config, trunk, exist_ok=True)
        AutoModelForCausalLM.register(config, lm, exist_ok=True)


_register()

__all__ = [
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
