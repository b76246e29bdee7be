from .configuration import MIXER_TYPES, MaskedMixerConfig
from .family import FAMILY
from .modeling import MaskedMixerForCausalLM, MaskedMixerModel, MaskedMixerPreTrainedModel

FAMILIES = (FAMILY,)  # what models/__init__.py collects

__all__ = [
    "FAMILIES",
    "FAMILY",
    "MIXER_TYPES",
    "MaskedMixerConfig",
    "MaskedMixerForCausalLM",
    "MaskedMixerModel",
    "MaskedMixerPreTrainedModel",
]
