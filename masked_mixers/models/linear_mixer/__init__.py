from .configuration import LINEAR_VARIANTS, LinearMixerConfig
from .family import FAMILY
from .modeling import LinearMixerForCausalLM, LinearMixerModel, LinearMixerPreTrainedModel

__all__ = [
    "FAMILY",
    "LINEAR_VARIANTS",
    "LinearMixerConfig",
    "LinearMixerForCausalLM",
    "LinearMixerModel",
    "LinearMixerPreTrainedModel",
]
