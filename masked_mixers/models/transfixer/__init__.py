from .family import FAMILY
from .modeling import TransfixerConfig, TransfixerForCausalLM, TransfixerModel, TransfixerPreTrainedModel

__all__ = ["FAMILY", "TransfixerConfig", "TransfixerForCausalLM", "TransfixerModel", "TransfixerPreTrainedModel"]
