from .configuration import LINEAR_VARIANTS, LinearMixerConfig
from .family import FAMILY
from .modeling import LinearMixerForCausalLM, LinearMixerModel, LinearMixerPreTrainedModel

FAMILIES = (FAMILY,)  # what models/__init__.py collects

__all__ = [
    "FAMILIES",
    "FAMILY",
    "LINEAR_VARIANTS",
    "LinearMixerConfig",
    "LinearMixerForCausalLM",
    "LinearMixerModel",
    "LinearMixerPreTrainedModel",
]
