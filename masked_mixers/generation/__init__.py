"""Text generation for every family: how prompts are laid out and how new tokens are decoded.

generate.py: prompts -> text through transformers' generate() (cached or not, any sampling),
with the prompt layout each family needs. full_window.py: the paper's decoding, the whole model
over the full L-token window per new token, the baseline the cache is checked and timed against.
objectives.py: self-speculative decoding with MTP heads; one-step completion.
"""

from .full_window import full_window_generate
from .generate import (
    check_length,
    cut_at_stop,
    encode_prompt,
    encode_prompts,
    generate_ids,
    generate_text,
    require_causal_lm,
    sampling_kwargs,
)
from .objectives import one_step_text, speculative_ids, speculative_text

__all__ = [
    "check_length",
    "cut_at_stop",
    "encode_prompt",
    "encode_prompts",
    "full_window_generate",
    "generate_ids",
    "generate_text",
    "one_step_text",
    "require_causal_lm",
    "sampling_kwargs",
    "speculative_ids",
    "speculative_text",
]
