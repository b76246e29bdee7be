from .family import FAMILY
from .modeling import TransfixerConfig, TransfixerForCausalLM, TransfixerModel, TransfixerPreTrainedModel

FAMILIES = (FAMILY,)  # what models/__init__.py collects

__all__ = [
    "FAMILIES",
    "FAMILY",
    "TransfixerConfig",
    "TransfixerForCausalLM",
    "TransfixerModel",
    "TransfixerPreTrainedModel",
]
