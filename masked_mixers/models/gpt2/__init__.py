"""The GPT-style baseline: transformers' own `GPT2LMHeadModel`, declared as a family here.

The paper's first causal-LM claim is that masked mixers learn more efficiently than the original
GPT-style transformers (learned absolute positions, LayerNorm, GELU MLP) while Llama-style ones
learn more efficiently still. No GPT-2 code is written here; `family.py` says how a size
description becomes a `GPT2Config`.
"""

from .family import FAMILY, gpt2_config_kwargs, gpt2_flops

FAMILIES = (FAMILY,)  # what models/__init__.py collects

__all__ = ["FAMILIES", "FAMILY", "gpt2_config_kwargs", "gpt2_flops"]
