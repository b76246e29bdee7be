"""Self-speculative greedy decoding with the extra heads of an MTP-heads model.

Each forward pass reads the text so far plus the drafts of the previous pass. The main head's
argmax at the last real position and at each draft position gives the greedy tokens; drafts are
accepted while they equal the main head's choice, and the first disagreement is replaced by the
main head's token. Every accepted token is therefore the token greedy decoding would have chosen
(the main head saw exactly the greedy text before it), so the output is identical to greedy
decoding; a pass yields between 1 and n tokens. Heads 1..n-1 at the position before the last
accepted token then draft the next n-1 tokens.

Hand-written because transformers' assisted generation needs a separate draft model (or prompt
lookup); here the drafts come from the same trunk pass. Each pass recomputes the whole text (no
cache), so its fair baseline is greedy decoding without a cache (`bench generate --speculative`
measures both that and the cached greedy decoder).
"""

from __future__ import annotations

import torch

from ..models import context_length
from .base import capture_head_input, lm_head
from .mtp import mtp_settings


def can_speculate(model) -> bool:
    tokens, mode = mtp_settings(model)
    return mode == "heads" and tokens > 1 and hasattr(model, "mtp_heads")


@torch.inference_mode()
def speculative_greedy(
    model, prompt: list[int], max_new_tokens: int, eos_token_id: int | None = None
) -> tuple[list[int], dict]:
    """(new token ids, {"passes": forward passes, "tokens": tokens made}) for one prompt.

    Stops after max_new_tokens or at eos_token_id (kept, like generate()).
    """
    if not can_speculate(model):
        raise ValueError(
            "self-speculative decoding needs a model trained with "
            "train.objective: mtp, mtp_mode: heads, mtp_tokens >= 2"
        )
    device = lm_head(model).weight.device
    text = list(prompt)
    new: list[int] = []
    drafts: list[int] = []
    passes = 0
    limit = context_length(model)
    while len(new) < max_new_tokens:
        drafts = drafts[: max(0, limit - len(text))]  # never run past L; the last real position must fit
        ids = torch.tensor([text + drafts], device=device)
        with capture_head_input(model) as feature:
            logits = model(input_ids=ids).logits[0]  # (t, vocab)
        passes += 1
        start = len(text) - 1  # position whose logits choose the first new token
        greedy = logits[start : start + len(drafts) + 1].argmax(-1).tolist()
        accepted = 1
        while accepted <= len(drafts) and drafts[accepted - 1] == greedy[accepted - 1]:
            accepted += 1
        chosen = greedy[:accepted][: max_new_tokens - len(new)]
        text += chosen
        new += chosen
        if eos_token_id is not None and eos_token_id in chosen:
            new = new[: new.index(eos_token_id) + 1]
            break
        # heads 1..n-1 at the position that chose the last accepted token draft the tokens after it
        at = feature.value[:, start + accepted - 1 : start + accepted]  # (1, 1, d)
        drafts = [int(h[0, 0].argmax()) for h in model.mtp_heads(at, lm_head(model))]
    return new, {"passes": passes, "tokens": len(new)}


__all__ = ["can_speculate", "speculative_greedy"]
