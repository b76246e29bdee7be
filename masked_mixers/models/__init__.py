"""Model architectures, one folder or file per family, registered with the Auto classes."""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .masked_mixer import MaskedMixerConfig, MaskedMixerForCausalLM, MaskedMixerModel


def _register() -> None:
    """Make AutoConfig / AutoModel / AutoModelForCausalLM know model_type "masked_mixer"."""
    AutoConfig.register("masked_mixer", MaskedMixerConfig, exist_ok=True)
    AutoModel.register(MaskedMixerConfig, MaskedMixerModel, exist_ok=True)
    AutoModelForCausalLM.register(MaskedMixerConfig, MaskedMixerForCausalLM, exist_ok=True)


_register()

__all__ = ["MaskedMixerConfig", "MaskedMixerForCausalLM", "MaskedMixerModel"]
