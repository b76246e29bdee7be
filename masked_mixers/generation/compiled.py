"""Greedy decoding of a masked mixer without per-token Python overhead on a GPU: one CUDA graph per step.

transformers' generate() with the MaskedMixerCache launches every kernel of a decoding step from
Python, and the step's shapes change as the text grows (it reads the `end` slots written so far).
At batch 1 on a GPU the arithmetic of a step takes microseconds and those launches dominate.
Here the step reads all L slots of the cache every time: the masked mixing rows are zero beyond
their own position, and unwritten slots hold finite values (zeros, or an earlier token's input
after a row was overwritten), so the extra columns add exact zeros and the result is the
same; in exchange every step has the same shapes and the same buffers, so it is captured once as
a CUDA graph (`torch.cuda.CUDAGraph`) and replayed per token: embed, all blocks through the
cache, LM head and argmax, the chosen token written back into the step's input, no host sync.
Hand-written because neither transformers' static-cache compilation (it expects a key/value
cache) nor `torch.compile(mode="reduce-overhead")` (the cache's tensors are mutated in place
between calls, which its graph trees copy or refuse) captures this cache as it is.

The blocks are called through `MixerBlock.forward(x, None, (slots, state))`, the same
entry as the cached path of generate(), so the arithmetic is the model's own.

Limits, each refused with one line: greedy only; prompts without padding (one length for the
batch); prompt + new tokens <= seq_len (no sliding window); CUDA graphs need a CUDA device
(`graphs=False` runs the same static step eagerly, on any device: that is how the CPU tests
check it).
"""

from __future__ import annotations

import time

import torch

from ..core.errors import UserError
from ..models import family_of


class StaticDecoder:
    """One greedy decoding step over a filled MaskedMixerCache, with fixed shapes and buffers."""

    def __init__(self, model, cache, first_token: torch.Tensor, position: int, graphs: bool):
        self.model, self.cache = model, cache
        self.seq_len = model.config.seq_len
        self.token = first_token.clone()  # (b, 1): the input of the next step, overwritten by each step
        self.rows = torch.full_like(self.token, position)  # (b, 1): its slot
        self.graph = None
        if graphs:
            self._capture()

    def _step(self) -> None:
        """Embed self.token at slot self.rows, run every block on the cache, choose the next token."""
        from ..models.masked_mixer.cache import SlotBatch

        trunk = self.model.model
        # end = L: static shapes. The token ids are not stored (cache.store): only a re-prime reads them.
        at = SlotBatch(self.rows, None, self.seq_len, self.cache.batch_index)
        x = trunk.embed_tokens(self.token)  # (b, 1, d)
        for layer, state in zip(trunk.layers, self.cache.states):
            x = layer(x, None, (at, state))
        logits = self.model.lm_head(x[:, -1])  # (b, vocab)
        self.token.copy_(logits.argmax(dim=-1, keepdim=True))
        self.rows.add_(1)

    def _capture(self) -> None:
        """Record one step as a CUDA graph. The warm-up steps on a side stream (as PyTorch's docs
        require) really decode, so the cache and the step's inputs are saved and restored around them."""
        saved = _snapshot(self)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._step()
        torch.cuda.current_stream().wait_stream(stream)
        _restore(self, saved)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._step()
        _restore(self, saved)  # capturing does not run the step, but be exact about the starting point

    def step(self) -> torch.Tensor:
        """Advance one token; returns the (b, 1) buffer holding it (copy it before the next step)."""
        if self.graph is not None:
            self.graph.replay()
        else:
            self._step()
        return self.token


def _cache_tensors(decoder: StaticDecoder) -> list[torch.Tensor]:
    cache = decoder.cache
    return [t for state in cache.states for t in state.values()] + [decoder.token, decoder.rows]


def _snapshot(decoder: StaticDecoder) -> list[torch.Tensor]:
    return [t.clone() for t in _cache_tensors(decoder)]


def _restore(decoder: StaticDecoder, saved: list[torch.Tensor]) -> None:
    for tensor, copy in zip(_cache_tensors(decoder), saved):
        tensor.copy_(copy)


def _check(model, input_ids: torch.Tensor, max_new_tokens: int, graphs: bool) -> None:
    if not family_of(model).capabilities.compiled_decoding:
        raise UserError(f"compiled decoding: only masked mixers have it, not {type(model).__name__}")
    if graphs and model.device.type != "cuda":
        raise UserError(f"compiled decoding: CUDA graphs need a CUDA device; the model is on {model.device.type}")
    if max_new_tokens < 1:
        raise UserError(f"compiled decoding: max_new_tokens must be >= 1, got {max_new_tokens}")
    if input_ids.shape[1] + max_new_tokens > model.config.seq_len:
        raise UserError(
            f"compiled decoding: prompt ({input_ids.shape[1]}) + new tokens ({max_new_tokens}) exceed seq_len "
            f"{model.config.seq_len}; it does not slide its window (use generate() for longer text)"
        )


@torch.inference_mode()
def static_greedy_generate(
    model, input_ids: torch.Tensor, max_new_tokens: int, graphs: bool = True, times: dict | None = None
) -> torch.Tensor:
    """input_ids (b, t), unpadded -> (b, t + max_new_tokens): greedy continuation, as generate(do_sample=False).

    times: if given, filled with seconds (each read after a device sync): prefill_s (to the first
    new token), setup_s (building the step, capturing its graph), steps_s (the other new tokens,
    run without a sync between them) and total_s.
    """
    _check(model, input_ids, max_new_tokens, graphs)
    input_ids = input_ids.to(model.device)
    clock = _Clock(model, times)
    out = model(input_ids=input_ids, use_cache=True)  # prefill: fills the cache at slots 0..t-1
    new = [out.logits[:, -1].argmax(dim=-1, keepdim=True)]  # (b, 1)
    clock.lap("prefill_s")
    if max_new_tokens > 1:
        decoder = StaticDecoder(model, out.cache, new[0], input_ids.shape[1], graphs)
        clock.lap("setup_s")
        new += [decoder.step().clone() for _ in range(max_new_tokens - 1)]
        clock.lap("steps_s")
    result = torch.cat([input_ids, *new], dim=1)
    clock.lap("total_s", since_start=True)
    return result


class _Clock:
    """Seconds between device-synchronised moments, into a dict (nothing, not even a sync, without one)."""

    def __init__(self, model, times: dict | None):
        self.model, self.times = model, times
        self.start = self.last = time.perf_counter()

    def lap(self, name: str, since_start: bool = False) -> None:
        if self.times is None:
            return
        _sync(self.model)
        now = time.perf_counter()
        self.times[name] = now - (self.start if since_start else self.last)
        self.last = now


def _sync(model) -> None:
    if model.device.type == "cuda":
        torch.cuda.synchronize(model.device)


__all__ = ["StaticDecoder", "static_greedy_generate"]
