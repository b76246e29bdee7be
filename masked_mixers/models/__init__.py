"""Model architectures, one folder or file per family, registered with the Auto classes."""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .ablated_llama import AblatedLlamaConfig, AblatedLlamaForCausalLM, AblatedLlamaModel
from .masked_mixer import MaskedMixerConfig, MaskedMixerForCausalLM, MaskedMixerModel


def _register() -> None:
    """Make AutoConfig / AutoModel / AutoModelForCausalLM know model_types "masked_mixer" and "llama_ablated"."""
    AutoConfig.register("masked_mixer", MaskedMixerConfig, exist_ok=True)
    AutoModel.register(MaskedMixerConfig, MaskedMixerModel, exist_ok=True)
    AutoModelForCausalLM.register(MaskedMixerConfig, MaskedMixerForCausalLM, exist_ok=True)
    AutoConfig.register("llama_ablated", AblatedLlamaConfig, exist_ok=True)
    AutoModel.register(AblatedLlamaConfig, AblatedLlamaModel, exist_ok=True)
    AutoModelForCausalLM.register(AblatedLlamaConfig, AblatedLlamaForCausalLM, exist_ok=True)


_register()

__all__ = ["AblatedLlamaConfig", "AblatedLlamaForCausalLM", "AblatedLlamaModel", "MaskedMixerConfig", "MaskedMixerForCausalLM", "MaskedMixerModel"]
