"""The paper's decoding: the whole model over the full L-token window for every new token.

The reference code of the masked mixer paper (Badger, arXiv 2409.01482) generates this way: no
cache, no shorter window, the text so far right-padded to L tokens and pushed through every
block, once per new token. It is kept here, next to generate() decoding, as the baseline that
the cached decoding must reproduce token for token (tests) and beat in speed (`bench generate`).
"""

from __future__ import annotations

import time

import torch

from ..models import context_length


@torch.inference_mode()
def full_window_generate(
    model, ids: torch.Tensor, new_tokens: int, pad_token_id: int = 0, times: list | None = None
) -> torch.Tensor:
    """Greedy decoding the paper's way: ids (b, t) -> (b, t + new_tokens).

    The window holds the text so far, left-aligned and padded on the right to L = context length
    tokens (the last L tokens once the text is longer); causality makes the padding invisible to
    the last real position, whose logits choose the next token. `times` gets a timestamp per token.
    """
    seq_len = context_length(model.config)
    batch = torch.arange(ids.shape[0])
    for _ in range(new_tokens):
        window = ids[:, -seq_len:]  # (b, n), n <= L
        n = window.shape[1]
        padded = torch.nn.functional.pad(window, (0, seq_len - n), value=pad_token_id)  # (b, L)
        logits = model(padded).logits  # (b, L, vocab): every position, as the reference code computes it
        ids = torch.cat([ids, logits[batch, n - 1].argmax(-1, keepdim=True)], dim=1)  # (b, t + 1)
        if times is not None:
            times.append(time.perf_counter())
    return ids


__all__ = ["full_window_generate"]
