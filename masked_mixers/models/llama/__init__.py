"""The transformer baseline: transformers' own `LlamaForCausalLM`, declared as a family here.

No Llama code is written in this package: attention is never reimplemented, so the comparison
is against the real thing. `family.py` says how a size description becomes a `LlamaConfig`.
"""

from .family import FAMILY, llama_block_flops, llama_config_kwargs

FAMILIES = (FAMILY,)  # what models/__init__.py collects

__all__ = ["FAMILIES", "FAMILY", "llama_block_flops", "llama_config_kwargs"]
