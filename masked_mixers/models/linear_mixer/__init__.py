from .cache import TokenMixingCache
from .configuration import LINEAR_VARIANTS, LinearMixerConfig
from .modeling import LinearMixerForCausalLM, LinearMixerModel, LinearMixerPreTrainedModel

__all__ = [
    "LINEAR_VARIANTS",
    "LinearMixerConfig",
    "LinearMixerForCausalLM",
    "LinearMixerModel",
    "LinearMixerPreTrainedModel",
    "TokenMixingCache",
]
