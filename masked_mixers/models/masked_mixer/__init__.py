from .configuration import MIXER_TYPES, MaskedMixerConfig
from .family import FAMILY
from .modeling import MaskedMixerForCausalLM, MaskedMixerModel, MaskedMixerPreTrainedModel

__all__ = ["FAMILY", "MIXER_TYPES", "MaskedMixerConfig", "MaskedMixerForCausalLM", "MaskedMixerModel", "MaskedMixerPreTrainedModel"]
