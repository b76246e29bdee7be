from .family import FAMILY
from .modeling import AblatedLlamaConfig, AblatedLlamaForCausalLM, AblatedLlamaModel

__all__ = ["FAMILY", "AblatedLlamaConfig", "AblatedLlamaForCausalLM", "AblatedLlamaModel"]
