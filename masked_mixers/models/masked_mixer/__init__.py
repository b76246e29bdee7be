from .configuration import MIXER_TYPES, MaskedMixerConfig
from .modeling import MaskedMixerForCausalLM, MaskedMixerModel, MaskedMixerPreTrainedModel

__all__ = ["MIXER_TYPES", "MaskedMixerConfig", "MaskedMixerForCausalLM", "MaskedMixerModel", "MaskedMixerPreTrainedModel"]
