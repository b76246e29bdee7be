"""Generation that uses what a training objective added (masked_mixers/objectives/).

- self-speculative greedy decoding with the extra heads of an MTP-heads model: the same text as
  greedy decoding, fewer forward passes when the heads' drafts are accepted;
- one-step completion: a model trained with `train.objective: completion` writes L/2 tokens after
  (the last L/2 tokens of) the prompt in one forward pass.
"""

from __future__ import annotations

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..core.errors import UserError
from ..models import context_length
from ..objectives import can_speculate, completion_settings, one_step_ids, speculative_greedy
from ..runs.layout import pad_token_id
from .generate import encode_prompt


def _decode(tokenizer: PreTrainedTokenizerBase, row: list[int]) -> str:
    if tokenizer.eos_token_id in row:  # what follows EOS is not part of the text
        row = row[: row.index(tokenizer.eos_token_id)]
    return tokenizer.decode(row, skip_special_tokens=True)


def speculative_ids(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[str], max_new_tokens: int
) -> tuple[list[list[int]], dict]:
    """Greedy new ids per prompt (each decoded alone), and {"passes", "tokens"} summed over prompts."""
    if not can_speculate(model):
        raise UserError(
            "--speculative: the model was not trained with train.objective: mtp, mtp_mode: heads, mtp_tokens >= 2"
        )
    if max_new_tokens < 1:
        raise UserError(f"max_new_tokens: must be >= 1, got {max_new_tokens}")
    rows, totals = [], {"passes": 0, "tokens": 0}
    for prompt in prompts:
        ids = encode_prompt(tokenizer, prompt)
        if len(ids) + max_new_tokens > context_length(model):
            raise UserError(
                f"--speculative: prompt ({len(ids)} tokens) plus {max_new_tokens} new tokens "
                f"exceeds seq_len={context_length(model)}; "
                "speculative decoding recomputes the text and does not slide past L"
            )
        new, stats = speculative_greedy(model, ids, max_new_tokens, tokenizer.eos_token_id)
        rows.append(new)
        totals = {k: totals[k] + stats[k] for k in totals}
    return rows, totals


def speculative_text(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    return [_decode(tokenizer, row) for row in speculative_ids(model, tokenizer, prompts, max_new_tokens)[0]]


def one_step_text(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[str]) -> list[str]:
    """The L/2 tokens a completion model writes after each prompt, in one forward pass."""
    if completion_settings(model) is None:
        raise UserError("--one-step: the model was not trained with train.objective: completion")
    ids = one_step_ids(model, [encode_prompt(tokenizer, p) for p in prompts], pad_token_id(tokenizer))
    return [_decode(tokenizer, row) for row in ids.tolist()]


__all__ = ["one_step_text", "speculative_ids", "speculative_text"]
