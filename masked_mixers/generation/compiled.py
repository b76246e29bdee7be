"""Greedy decoding of a masked mixer without per-token Python overhead: one fixed-shape step, compiled.

transformers' generate() with the MaskedMixerCache launches every op of a decoding step from
Python, and the step's shapes change as the text grows (it reads the `end` slots written so far).
At batch 1 the arithmetic of a step is small (a CPU reads each weight once, a GPU takes
microseconds) and that per-op overhead dominates. Here the step reads all L slots of the cache every
time: the masked mixing rows are zero beyond their own position, and unwritten slots hold finite
values (zeros, or an earlier token's input after a row was overwritten), so the extra columns add
exact zeros and the result is the same; in exchange every step has the same shapes and the same
buffers, so it can be compiled once and replayed per token: embed, all blocks through the cache, LM
head and argmax, the chosen token written back into the step's input, no host sync. Modes (MODES):

- "compile": `torch.compile` of the step (Inductor: fused C++ kernels on a CPU, Triton on a GPU),
  any device; the first step pays for compiling (tens of seconds on a CPU; cached after that);
- "cuda-graph": the step captured once as a CUDA graph (`torch.cuda.CUDAGraph`), CUDA only;
- "eager": the same step op by op, on any device (how the tests check the step itself).

The server (`serve --compile`, serving/rows.py) compiles `slots_step`: the same step returning logits
(each row then samples its own way), recording token ids for the sliding window's re-primes.

Hand-written because neither transformers' static-cache compilation (it expects a key/value cache)
nor `torch.compile(mode="reduce-overhead")` of the model (the cache's tensors are mutated in place
between calls, which its graph trees copy or refuse) handles this cache as it is; compiling the
step, whose in-place writes torch.compile traces as writes to its inputs, does.

The blocks are called through `MixerBlock.forward(x, None, (slots, state))`, the same
entry as the cached path of generate(), so the arithmetic is the model's own.

Limits, each refused with one line: greedy only; prompts without padding (one length for the
batch); prompt + new tokens <= seq_len (no sliding window); CUDA graphs need a CUDA device.
"""

from __future__ import annotations

import time
from functools import cache

import torch

from ..core.errors import UserError
from ..models import family_of

MODES = ("compile", "cuda-graph", "eager")


class StaticDecoder:
    """One greedy decoding step over a filled MaskedMixerCache, with fixed shapes and buffers."""

    def __init__(self, model, cache, first_token: torch.Tensor, position: int, mode: str):
        self.model, self.cache = model, cache
        self.seq_len = model.config.seq_len
        self.token = first_token.clone()  # (b, 1): the input of the next step, overwritten by each step
        self.rows = torch.full_like(self.token, position)  # (b, 1): its slot
        self.graph = None
        self.compiled = mode == "compile"
        if mode == "cuda-graph":
            self._capture()

    def _step(self) -> None:
        """Embed self.token at slot self.rows, run every block on the cache, choose the next token."""
        step = _compiled_step() if self.compiled else decode_step
        step(self.model, self.cache.states, self.token, self.rows, self.cache.batch_index, self.seq_len)

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


def decode_step(model, states: list[dict], token: torch.Tensor, rows: torch.Tensor, batch_index, seq_len: int) -> None:
    """One greedy step in place: embed `token` (b, 1) at slots `rows` (b, 1), run every block on the cache
    `states`, write the chosen next token into `token` and advance `rows`. A function of its inputs (no
    decoder object), so that one compiled version serves every decoder of the same model and shapes."""
    logits = logits_step(model, states, token, rows, batch_index, seq_len)  # (b, vocab)
    token.copy_(logits.argmax(dim=-1, keepdim=True))
    rows.add_(1)


def logits_step(model, states: list[dict], token: torch.Tensor, rows: torch.Tensor, batch_index, seq_len: int):
    """(b, vocab) next-token logits of `token` (b, 1) at slots `rows` (b, 1), writing its inputs into the cache
    `states`. Every row reads all L slots (end = L): the shapes depend only on the batch size."""
    from ..models.masked_mixer.cache import SlotBatch

    trunk = model.model
    # end = L: static shapes. The token ids are not stored here: only a re-prime reads them (slots_step stores them).
    at = SlotBatch(rows, None, seq_len, batch_index)
    x = trunk.embed_tokens(token)  # (b, 1, d)
    for layer, state in zip(trunk.layers, states):
        x = layer(x, None, (at, state))
    return model.lm_head(x[:, -1])  # (b, vocab)


@cache
def _compiled_step():
    """decode_step through torch.compile, made once: dynamo keeps one graph per model and shapes (its guards)."""
    return torch.compile(decode_step, dynamic=False)


def slots_step(model, states, token_ids, valid, token, rows, batch_index, seq_len: int) -> torch.Tensor:
    """logits_step that also records each row's token id at its slot in `token_ids` and `valid` (b, L): what a
    re-prime of the sliding window reads back (the server's rows slide; static_greedy_generate's do not)."""
    token_ids[batch_index, rows] = token
    valid[batch_index, rows] = True
    return logits_step(model, states, token, rows, batch_index, seq_len)


@cache
def compiled_slots_step():
    """slots_step through torch.compile, made once (one graph per model and batch size): the server's step."""
    return torch.compile(slots_step, dynamic=False)


def _cache_tensors(decoder: StaticDecoder) -> list[torch.Tensor]:
    cache = decoder.cache
    return [t for state in cache.states for t in state.values()] + [decoder.token, decoder.rows]


def _snapshot(decoder: StaticDecoder) -> list[torch.Tensor]:
    return [t.clone() for t in _cache_tensors(decoder)]


def _restore(decoder: StaticDecoder, saved: list[torch.Tensor]) -> None:
    for tensor, copy in zip(_cache_tensors(decoder), saved):
        tensor.copy_(copy)


def check_static_request(model, input_ids: torch.Tensor, max_new_tokens: int, mode: str) -> None:
    """One line (UserError) for a request the static step cannot decode."""
    if mode not in MODES:
        raise UserError(f"compiled decoding: mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not family_of(model).capabilities.compiled_decoding:
        raise UserError(f"compiled decoding: only masked mixers have it, not {type(model).__name__}")
    if mode == "cuda-graph" and model.device.type != "cuda":
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
    model,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    mode: str = "compile",
    times: dict | None = None,
    eos_token_id: int | None = None,
    streamer=None,
) -> torch.Tensor:
    """input_ids (b, t), unpadded -> (b, t + n): greedy continuation, as generate(do_sample=False).

    mode: one of MODES (see the module docstring).
    eos_token_id: batch 1 only: stop after this token (then n <= max_new_tokens; else n = max_new_tokens).
    streamer: a transformers streamer, handed the prompt and then each new token (one host sync per token).
    times: if given, filled with seconds (each read after a device sync): prefill_s (to the first
    new token), setup_s (building the step, capturing its graph; with "compile", the first step,
    which compiles), steps_s (the other new tokens, run without a sync between them unless a
    streamer or eos_token_id needs one), total_s, and timed_steps (the steps in steps_s).
    """
    check_static_request(model, input_ids, max_new_tokens, mode)
    if eos_token_id is not None and input_ids.shape[0] != 1:
        raise UserError(f"compiled decoding: eos_token_id stops batch 1 only, got a batch of {input_ids.shape[0]}")
    input_ids = input_ids.to(model.device)
    clock = _Clock(model, times)
    out = model(input_ids=input_ids, use_cache=True)  # prefill: fills the cache at slots 0..t-1
    new = [out.logits[:, -1].argmax(dim=-1, keepdim=True)]  # (b, 1)
    clock.lap("prefill_s")
    if streamer is not None:
        streamer.put(input_ids.cpu())
        streamer.put(new[0].cpu())

    def done() -> bool:
        return len(new) >= max_new_tokens or (eos_token_id is not None and new[-1].item() == eos_token_id)

    def advance(decoder: StaticDecoder) -> None:
        new.append(decoder.step().clone())
        if streamer is not None:
            streamer.put(new[-1].cpu())

    if not done():
        decoder = StaticDecoder(model, out.cache, new[0], input_ids.shape[1], mode)
        if mode == "compile":
            advance(decoder)  # the first call compiles (a later decoder of the same model and shapes reuses it)
        clock.lap("setup_s")
        first_timed = len(new)
        while not done():
            advance(decoder)
        clock.lap("steps_s")
        if times is not None:
            times["timed_steps"] = len(new) - first_timed
    if streamer is not None:
        streamer.end()
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


__all__ = [
    "MODES",
    "StaticDecoder",
    "check_static_request",
    "compiled_slots_step",
    "logits_step",
    "slots_step",
    "static_greedy_generate",
]
