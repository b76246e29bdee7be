"""Prompt -> text for any causal language model of any family, through transformers' generate().

Decoding (greedy, temperature, top-k, top-p, repetition penalty, EOS stop, streaming) is
transformers' own; this module decides how prompts are laid out, which matters for families whose
positions are rows of mixing matrices (`Capabilities.positions_are_rows`: the masked and linear
mixers, the transfixer; see models/masked_mixer/positions.py):

- a model whose tokenizer pads on the right (the default, and what packed training amounts to)
  gets right-padded prompts: every prompt starts at position 0 and the tokens generated for it
  follow its last real token, whatever the other prompts in the batch are;
- a model whose tokenizer pads on the left was trained with text ending at position L - 1, so
  prompts are left-padded to L - max_new_tokens (at least the longest prompt): the text ends near
  L - 1 as in training, and a prompt's positions do not depend on the rest of its batch;
- any other family (Llama) gets left padding and position ids that skip the pads.

With the cache (default) a masked mixer costs O(t d) per layer per new token; past seq_len it
slides its window (keeps the last L // 2 tokens, recomputes them once). Without the cache every
step recomputes the current window (the text so far, up to L tokens); the paper's reference code
ran the model over a full L-token window instead (full_window.py; `bench generate` measures both).
"""

from __future__ import annotations

import contextlib
import logging
import math

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from ..core.errors import UserError
from ..models import context_length, family_of
from ..runs.layout import GENERATE, input_side, pad_token_id, place, positions_are_rows


def sampling_kwargs(
    greedy: bool = False, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, repetition_penalty: float = 1.0
) -> dict:
    """generate() arguments of a decoding strategy; top_k=0 and top_p=1 switch those filters off."""
    finite = all(math.isfinite(v) for v in (temperature, top_p, repetition_penalty))
    if not finite or temperature <= 0 or not 0 < top_p <= 1 or top_k < 0 or repetition_penalty <= 0:
        raise UserError(
            f"sampling: need temperature > 0, 0 < top_p <= 1, top_k >= 0, repetition_penalty > 0 "
            f"(got {temperature}, {top_p}, {top_k}, {repetition_penalty})"
        )
    kwargs = {"repetition_penalty": repetition_penalty}
    if greedy:
        return {**kwargs, "do_sample": False, "temperature": None, "top_k": None, "top_p": None}
    return {**kwargs, "do_sample": True, "temperature": temperature, "top_k": top_k, "top_p": top_p}


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str | list[int]) -> list[int]:
    """A prompt's token ids; a prompt given as ids (lm-eval hands over encoded contexts) is taken as it is."""
    ids = list(prompt) if isinstance(prompt, (list, tuple)) else tokenizer(prompt)["input_ids"]
    if not ids:  # an empty prompt starts from the start-of-text token
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if start is None:
            raise UserError("prompt: empty, and the tokenizer has no bos/eos token to start from")
        ids = [start]
    return ids


def encode_prompts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str] | list[list[int]],
    max_new_tokens: int,
    padding_side: str | None = None,
) -> dict[str, torch.Tensor]:
    """input_ids and attention_mask (b, width) laid out as the module docstring says; prompts are texts or token ids."""
    if not prompts:
        raise UserError("prompt: give at least one prompt")
    side = input_side(model, tokenizer, GENERATE, override=padding_side)  # runs/layout.py owns the side
    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    width = max(map(len, encoded))
    if positions_are_rows(model) and side == "left":
        width = max(width, context_length(model.config) - max_new_tokens)
    return {k: v.to(model.device) for k, v in place(encoded, width, side, pad_token_id(tokenizer)).items()}


@contextlib.contextmanager
def _quiet_right_padding_warning(enabled: bool):
    """transformers warns about right padding in decoder-only models; for a masked mixer it is correct."""
    log = logging.getLogger("transformers.generation.utils")
    level = log.level
    if enabled:
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def generate_ids(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str] | list[list[int]],
    max_new_tokens: int = 100,
    *,
    seed: int | None = None,
    use_cache: bool = True,
    streamer: BaseStreamer | None = None,
    padding_side: str | None = None,
    stop_strings: list[str] | None = None,
    stopping_criteria: list | None = None,
    **sampling,
) -> torch.Tensor:
    """New token ids (b, <= max_new_tokens), pad after a row's EOS. `sampling`: see `sampling_kwargs`.

    A row also stops once its text contains one of `stop_strings` (the ids keep the stop string;
    `generate_text` cuts it off). Prompts are texts or token-id lists. `stopping_criteria`: more transformers
    StoppingCriteria (the server's per-row tracker), called after every step.

    Families without a generation cache (`Capabilities.cached_generation`) recompute the text at
    every step whatever `use_cache` says. Runs under torch.inference_mode(), which skips autograd's
    bookkeeping on every operation: at one token per step that made cached decoding 10-15% faster
    than under no_grad() on a CPU.
    """
    if max_new_tokens < 1:
        raise UserError(f"max_new_tokens: must be >= 1, got {max_new_tokens}")
    inputs = encode_prompts(model, tokenizer, prompts, max_new_tokens, padding_side)
    check_length(model, inputs["input_ids"].shape[1], max_new_tokens)
    capabilities = family_of(model).capabilities
    # transformers' StopStringCriteria (it reads the tokenizer's vocabulary): each row stops at its first stop string
    stops = {"stop_strings": list(stop_strings), "tokenizer": tokenizer} if stop_strings else {}
    if seed is not None:
        torch.manual_seed(seed)
    right_padded = not bool(inputs["attention_mask"][:, -1].all())
    with _quiet_right_padding_warning(right_padded), torch.inference_mode():
        out = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            use_cache=use_cache and capabilities.cached_generation,
            streamer=streamer,
            pad_token_id=pad_token_id(tokenizer),
            eos_token_id=tokenizer.eos_token_id,
            **sampling_kwargs(**sampling),
            **stops,
            **({"stopping_criteria": StoppingCriteriaList(stopping_criteria)} if stopping_criteria else {}),
        )
    return out[:, inputs["input_ids"].shape[1] :].clone()  # a normal tensor again, not an inference tensor


def require_causal_lm(model: PreTrainedModel, where: str) -> None:
    """UserError unless `model` continues text left to right (bidirectional models and autoencoders do not)."""
    family = family_of(model)
    if not family.capabilities.generates:
        raise UserError(
            f"{where}: a {family.name} model does not continue text left to right; give a causal language model"
        )


def check_length(model: PreTrainedModel, prompt_width: int, max_new_tokens: int) -> None:
    """UserError unless `max_new_tokens` after a prompt of `prompt_width` columns fits a model that cannot slide
    past L."""
    capabilities = family_of(model).capabilities
    if capabilities.positions_are_rows and not capabilities.slides_past_context:
        needed, limit = prompt_width + max_new_tokens, context_length(model)
        if needed > limit:
            raise UserError(
                f"max_new_tokens: a {family_of(model).name} model holds at most seq_len={limit} tokens and "
                f"cannot slide past it; the longest prompt plus {max_new_tokens} new tokens needs {needed}"
            )


def cut_at_stop(text: str, stop_strings: list[str] | None) -> tuple[str, bool]:
    """(text before the first stop string, whether one was found): what OpenAI's and lm-eval's `stop` return."""
    cut = min((i for i in (text.find(s) for s in stop_strings or () if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def generate_text(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[str], max_new_tokens: int = 100, **kwargs
) -> list[str]:
    """The continuation of each prompt (without the prompt, cut before a stop string); keyword arguments as
    `generate_ids`."""
    texts = []
    for row in generate_ids(model, tokenizer, prompts, max_new_tokens, **kwargs).tolist():
        if tokenizer.eos_token_id in row:  # what follows EOS is padding
            row = row[: row.index(tokenizer.eos_token_id)]
        texts.append(cut_at_stop(tokenizer.decode(row, skip_special_tokens=True), kwargs.get("stop_strings"))[0])
    return texts


__all__ = [
    "check_length",
    "cut_at_stop",
    "require_causal_lm",
    "encode_prompt",
    "encode_prompts",
    "generate_ids",
    "generate_text",
    "sampling_kwargs",
]
