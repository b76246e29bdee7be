"""A generation cache for masked mixers: the inputs each token-mixing layer has seen so far.

A masked mixing layer's output at position i is sum_{j<=i} W[i, j] x_j + b[i], so to produce
position i during generation a layer needs the inputs x_0..x_i it was given, nothing else.
`TokenMixingCache` keeps them, one (batch, t, d) tensor per layer, and is a transformers
`Cache`, so `generate()` threads it through `forward(cache=...)` / `outputs.cache` like a KV
cache (cropping, beam reordering and batch selection come from `DynamicLayer`).
"""

import torch
from transformers.cache_utils import Cache, DynamicLayer


class TokenMixingLayer(DynamicLayer):
    """One layer's mixing inputs, (batch, t, d), kept as `keys`; `values` stay (batch, t, 0)."""

    def append(self, states: torch.Tensor) -> torch.Tensor:
        """Add the inputs of the new positions and return all inputs so far, (batch, t, d)."""
        keys, _ = self.update(states, states[..., :0])
        return keys


class TokenMixingCache(Cache):
    """Per-layer mixing inputs for incremental generation with a masked mixer."""

    def __init__(self, num_layers: int):
        super().__init__(layers=[TokenMixingLayer() for _ in range(num_layers)])

    def append(self, layer_idx: int, states: torch.Tensor) -> torch.Tensor:
        return self.layers[layer_idx].append(states)


__all__ = ["TokenMixingCache", "TokenMixingLayer"]
