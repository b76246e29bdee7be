"""The additive causal attention mask, one definition for every attention model of this package.

The transfixer, the ablated Llama and the Llama autoencoder build this mask themselves and pass
it to every attention call, so causality never rests on what an attention backend does when it
gets no mask (`is_causal` defaults differ between eager, sdpa and flash kernels).

A pad query may attend to itself. Without that, a query whose keys are all pads (every leading
pad of a left-padded row) has a fully masked row: its softmax is uniform over *all* keys,
future ones included, and the last leading pad, trained to predict the first real token, reads
it. With the diagonal always open no row is fully masked, and a pad's output depends on
nothing after it.
"""

from __future__ import annotations

import torch


def causal_attention_bias(
    attention_mask: torch.Tensor | None, length: int, dtype: torch.dtype, device=None
) -> torch.Tensor:
    """Additive attention mask (b or 1, 1, t, t) for t = `length` positions.

    0 where query i may read key j: j <= i and j is a real token (`attention_mask` 1), or j == i;
    the dtype's most negative value elsewhere (not -inf, which turns a fully masked row into NaN
    in some backends). `attention_mask`: (b, t) 0/1 or None (every token real; one mask, b = 1).
    """
    i = torch.arange(length, device=device)
    allowed = (i[:, None] >= i[None, :])[None]  # (1, t, t): query i, key j
    if attention_mask is not None:
        keys = attention_mask[:, None, :].to(device=device, dtype=torch.bool)  # (b, 1, t)
        allowed = allowed & (keys | (i[:, None] == i[None, :]))  # (b, t, t): real keys, plus the diagonal
    bias = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)
    return bias[:, None]  # (b, 1, t, t): broadcast over heads


__all__ = ["causal_attention_bias"]
