from .family import FAMILY
from .modeling import AblatedLlamaConfig, AblatedLlamaForCausalLM, AblatedLlamaModel

FAMILIES = (FAMILY,)  # what models/__init__.py collects

__all__ = ["FAMILIES", "FAMILY", "AblatedLlamaConfig", "AblatedLlamaForCausalLM", "AblatedLlamaModel"]
