"""Where a continuous batch keeps its rows' cache and how one decoding step runs: eager or compiled.

`ContinuousBatch` (continuous.py) hands each new request's one-row cache to `add`, asks `logits`
for the next-token logits of every running row, and says which rows stay with `keep`. Two ways:

- `CachedRows` (the default): the cache holds exactly the running rows (`MaskedMixerCache.join`,
  `keep_rows`) and a step is the model's own cached forward, op by op from Python.
- `CompiledRows` (`serve --compile`, masked and linear mixers): the cache has a fixed capacity, one
  of a few bucket sizes (1, 2, 4, ... up to --max-batch-size), and a running row owns one of its
  rows; a free row decodes a harmless dummy token at slot 0. A step is `generation.compiled`'s
  `slots_step` through torch.compile: every row reads all L slots, so the shapes depend only on
  the capacity and one graph per bucket serves any mix of positions. The graphs are compiled before
  the server answers (`warm_up`), so no request pays for compiling. The capacity grows to the next
  bucket when a row joins a full cache and shrinks to the smallest bucket that holds the running
  rows when rows leave (one copy of the cache each time; a step costs what its capacity costs).
  A row whose window is full is re-primed eagerly first (the model's own sliding window, once per
  L - L//2 tokens of that row).

Hand-written because transformers' compiled generation expects a key/value cache and runs one
fixed batch to its end (see generation/compiled.py).
"""

from __future__ import annotations

import copy
import logging
import time

import torch

from ..generation.compiled import compiled_slots_step
from ..models.masked_mixer.cache import MaskedMixerCache

log = logging.getLogger(__name__)


class CachedRows:
    """The running rows' cache, exactly those rows; a step is the model's cached forward."""

    def __init__(self, model):
        self.model = model
        self.cache = None  # the model's generation cache of exactly the running rows, in order

    def add(self, cache) -> None:
        """Append a one-row cache (a request's prefilled prompt) as the last row."""
        self.cache = cache if self.cache is None else type(cache).join([self.cache, cache])

    def keep(self, live: list[int]) -> None:
        """Keep rows `live`, in that order."""
        if live:
            self.cache.keep_rows(live)
        else:
            self.cache = None

    def logits(self, tokens: list[int]) -> torch.Tensor:
        """(b, vocab) next-token logits after each row's input token `tokens[i]`."""
        ids = torch.tensor([[token] for token in tokens], device=self.model.device)  # (b, 1)
        out = self.model(input_ids=ids, cache=self.cache, use_cache=True, sliding_window=True)
        return out.logits[:, -1]


def bucket_sizes(max_rows: int) -> list[int]:
    """Capacities a CompiledRows cache takes: powers of two below max_rows, and max_rows."""
    sizes = [1 << k for k in range(max_rows.bit_length()) if 1 << k < max_rows]
    return sizes + [max_rows]


class CompiledRows:
    """A cache of bucket capacity whose rows the running requests own; a step is the compiled slots_step."""

    def __init__(self, model, max_rows: int):
        self.model, self.seq_len = model, model.config.seq_len
        self.buckets = bucket_sizes(max_rows)
        # one graph per bucket (and per model in one process): dynamo's default of 8 per function is too few
        # for many buckets, and past it dynamo silently runs the step eagerly
        limit = torch._dynamo.config.recompile_limit
        torch._dynamo.config.recompile_limit = max(limit, 2 * len(self.buckets) + 8)
        self.cache = None  # MaskedMixerCache with `capacity` rows
        self.owner: list[int] = []  # running row i decodes in cache row owner[i]

    @property
    def capacity(self) -> int:
        return 0 if self.cache is None else len(self.cache.tokens)

    @torch.inference_mode()  # as the server's steps run: dynamo's guards tell inference tensors from others
    def warm_up(self) -> float:
        """Compile the step for every bucket before serving; returns the seconds it took."""
        start = time.perf_counter()
        for size in self.buckets:
            log.info("compiling the decoding step for %d rows", size)
            self._step(self._new_cache(size), torch.zeros(size, 1, dtype=torch.long, device=self.model.device))
        return time.perf_counter() - start

    def add(self, cache) -> None:
        """Give a one-row cache (a request's prefilled prompt) a free row, growing to the next bucket if none is."""
        if len(self.owner) == self.capacity:
            self._resize(next(size for size in self.buckets if size > len(self.owner)))
        free = min(set(range(self.capacity)) - set(self.owner))
        self.cache.replace_rows(torch.tensor([free], device=self.cache.tokens.device), cache)
        self.owner.append(free)

    def keep(self, live: list[int]) -> None:
        """Keep running rows `live`, in that order; free the others' rows and shrink to the smallest bucket."""
        self.owner = [self.owner[i] for i in live]
        if not self.owner:
            self.cache = None
            return
        free = sorted(set(range(self.capacity)) - set(self.owner))
        self.cache.lengths[free] = 0  # a free row decodes at slot 0, never near the window's end
        smallest = next(size for size in self.buckets if size >= len(self.owner))
        if smallest < self.capacity:
            self._resize(smallest)

    def logits(self, tokens: list[int]) -> torch.Tensor:
        """(b, vocab) next-token logits after each running row's input token `tokens[i]`."""
        lengths, device = self.cache.lengths, self.cache.tokens.device
        if int(lengths.max()) >= self.seq_len:  # slide full windows (eager; free rows sit at slot 0)
            self.model.model._reprime(self.cache, (lengths >= self.seq_len).nonzero().flatten())
        index = self._index()  # None: the running rows are rows 0..capacity-1, in order
        step_tokens = torch.tensor(tokens)[:, None]  # (b, 1)
        if index is not None:
            step_tokens = torch.zeros(self.capacity, 1, dtype=torch.long).index_copy_(0, index, step_tokens)
        logits = self._step(self.cache, step_tokens.to(device))  # (capacity, vocab)
        if index is None:
            lengths += 1
            return logits
        lengths[index] += 1
        return logits[index.to(device)]

    def _index(self) -> torch.Tensor | None:
        """The cache rows of the running rows, or None when they are all of them, in order (no gather needed)."""
        if self.owner == list(range(self.capacity)):
            return None
        return torch.tensor(self.owner)

    def _step(self, cache, tokens: torch.Tensor) -> torch.Tensor:
        """The compiled step on every row of `cache` at slots cache.lengths; tokens (capacity, 1)."""
        rows = cache.lengths.to(tokens.device, copy=True)[:, None]  # (capacity, 1): each row's next slot
        step = compiled_slots_step()
        return step(self.model, cache.states, cache.tokens, cache.valid, tokens, rows, cache.batch_index, self.seq_len)

    def _new_cache(self, capacity: int) -> MaskedMixerCache:
        trunk = self.model.model
        return MaskedMixerCache(trunk, capacity, trunk.embed_tokens.weight.dtype, self.model.device)

    def _resize(self, capacity: int) -> None:
        """Move the running rows to rows 0..n-1 of a new cache of `capacity` rows (one copy)."""
        fresh = self._new_cache(capacity)
        if self.cache is not None and self.owner:
            running = torch.arange(len(self.owner), device=fresh.tokens.device)
            fresh.replace_rows(running, _rows_of(self.cache, self.owner))
        self.cache, self.owner = fresh, list(range(len(self.owner)))


def _rows_of(cache, rows: list[int]):
    """A copy of `cache` holding only rows `rows` (for replace_rows)."""
    part = copy.copy(cache)
    part.states = [{name: t[rows] for name, t in state.items()} for state in cache.states]
    part.tokens, part.valid, part.lengths = cache.tokens[rows], cache.valid[rows], cache.lengths[rows]
    return part


__all__ = ["CachedRows", "CompiledRows", "bucket_sizes"]
