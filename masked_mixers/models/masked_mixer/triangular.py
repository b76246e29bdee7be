"""A token-mixing matmul that skips the masked upper triangle: a blocked matmul over row tiles.

The dense path computes `tril(W) @ x` as a full (t, t) @ (t, d) product, half of whose
multiply-adds hit zeros. Cut W into row tiles of `tile` rows: rows [s, e) of a lower-triangular
matrix are zero in every column >= e, so

    y[s:e] = W[s:e, :e] @ x[:e]

is exact. Summed over the tiles that is t (t + tile) / 2 columns' work instead of t^2, i.e.
(1 + tile / t) / 2 of the dense FLOPs, in ceil(t / tile) matmuls whose inner size grows tile by
tile. No library ships a triangular-times-dense matmul with batched right-hand sides on both CPU
and CUDA (`torch.linalg` has triangular *solves*, BLAS `trmm` is not exposed for this broadcasting),
so this is hand-written from plain matmuls; the backward pass is autograd's, through the same
slices: dW gets only the tiles that were read (the rest stays exactly zero, as with `tril`), dx
sums the tiles' contributions.

Whether it pays depends on the device: each tile is a separate kernel launch and a narrower GEMM,
so small t or a CPU may lose more to that than the skipped half saves. `bench train --triangular-tile`
measures it; the default (0) keeps the dense product.
"""

from __future__ import annotations

import torch


def lower_triangular_matmul(w: torch.Tensor, x: torch.Tensor, tile: int) -> torch.Tensor:
    """`w @ x` for a lower-triangular `w` (..., t, t) and x (..., t, d), reading only the tiles on and below the
    diagonal.

    Leading dimensions broadcast as in torch.matmul. `w` must already be masked (zeros above the
    diagonal): the diagonal tile is multiplied whole, its upper part included.
    """
    t = w.shape[-1]
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    if tile >= t:
        return torch.matmul(w, x)
    # row tile [s, e) reads columns [0, e): (..., e - s, e) @ (..., e, d) -> (..., e - s, d)
    parts = [
        torch.matmul(w[..., s : min(s + tile, t), : min(s + tile, t)], x[..., : min(s + tile, t), :])
        for s in range(0, t, tile)
    ]
    return torch.cat(parts, dim=-2)  # (..., t, d)


def triangular_flop_fraction(t: int, tile: int) -> float:
    """Multiply-adds of the blocked product over those of the dense one, at length t."""
    if tile < 1 or tile >= t:
        return 1.0
    columns = sum(min(s + tile, t) * (min(s + tile, t) - s) for s in range(0, t, tile))
    return columns / (t * t)


def set_triangular_tile(model: torch.nn.Module, tile: int) -> int:
    """Switch every masked token mixing in `model` to the blocked product (tile > 0) or back to dense (0).

    Also records the tile in `model.config.triangular_tile` when the config has that field, so a
    saved model keeps the switch. Returns how many mixing layers were switched.
    """
    if tile < 0:
        raise ValueError(f"triangular tile must be >= 0 (0: dense), got {tile}")
    switched = 0
    for module in model.modules():
        if hasattr(module, "triangular_tile"):
            module.triangular_tile = tile
            switched += 1
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "triangular_tile"):
        config.triangular_tile = tile
    return switched


__all__ = ["lower_triangular_matmul", "set_triangular_tile", "triangular_flop_fraction"]
