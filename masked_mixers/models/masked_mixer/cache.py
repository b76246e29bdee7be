"""The incremental-decoding cache of a masked mixer.

Positions ("slots", which follow the attention mask) and the sliding window's length rule are
defined in models/masked_mixer/positions.py. Sliding here: when a row's next token would land at position L,
the row keeps its last L // 2 tokens and recomputes them once at positions 0 .. L//2 - 1
("re-prime"), so text can be arbitrarily long, and each re-prime costs one forward over L // 2
tokens per L - L // 2 generated ones.

A masked mixer is causal, so a position's input to every layer never changes while it
stays at the same position. `MaskedMixerCache` keeps, per layer and row, what the token mixing
reads from earlier positions (its normalised, padding-masked input; for the expanded mixing also
the wide hidden layer; for the multi-head mixing the projected heads), preallocated for L slots.
The cache holds no weights: a decoding step runs the blocks' own modules, reading from each mixing
matrix only the rows of the new positions, so adapters, hooks and quantized layers act on it as
on training. On CPU the cached mixing runs in fp32 even for a bf16 model (CPU bf16 batched
mat-vec kernels are several times slower than fp32 ones). A new token then costs one row of each
mixing matrix times the cached inputs (O(t d) per layer) plus the feed-forward.

Two ways to address the new positions (`SlotBatch`): the general one, index tensors of each row's
slot with the mixing rows gathered and masked per row (rows at different slots: a right-padded
batch), and the one-slot path, taken when every row sits at the same slot (batch 1, prompts of one
length): the mixing rows are slices of the parameters and the cache is written through a slice,
with the same arithmetic and half the tensor operations (tests/test_decode_paths.py checks the two
agree, wrapped mixings included).

Beam search reorders the rows with `reorder_cache` (transformers' generate() calls it). The server's
continuous batching (serving/continuous.py) joins a new request's one-row cache to the running batch
(`join`) and drops the rows of finished ones (`keep_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .mixing import new_mixing_state


@dataclass
class SlotBatch:
    """Where the new tokens of one forward go: slots `rows` (b, t), `valid` (b, t) or None when all
    are real tokens (a decoding step), `end` = max row + 1.

    batch_index: (b, 1) row numbers, to index a (b, slots, ...) cache together with `rows`.
    slot: set (and `rows` None) when every row writes one real token at this same slot, the usual
    decoding step (batch 1, or prompts of one length); then end = slot + 1. A mixing then reads its
    weight rows as slices (views of the parameter) and writes the cache through a slice: every
    column < end is <= slot, so no mask and no index tensor is needed. At batch 1 a step is mostly
    per-op overhead, and the index/mask ops of the general path cost about as much as the mixing.
    """

    rows: torch.Tensor | None
    valid: torch.Tensor | None
    end: int
    batch_index: torch.Tensor
    slot: int | None = None


class MaskedMixerCache:
    """Per-layer token-mixing inputs of every position of each row's window (see the module docstring).

    Made by `MaskedMixerForCausalLM.forward(..., use_cache=True)` and handed back as `outputs.cache`,
    which is how transformers' `generate()` carries it from step to step.
    """

    is_compileable = False
    is_croppable = False

    def __init__(self, model, batch_size: int, dtype: torch.dtype, device):
        config = model.config
        self.seq_len, self.dtype = config.seq_len, dtype
        self.keep = config.seq_len // 2
        state_dtype = torch.float32 if torch.device(device).type == "cpu" else dtype
        self.states = [new_mixing_state(config, batch_size, state_dtype, device) for _ in model.layers]
        self.tokens = torch.zeros(batch_size, self.seq_len, dtype=torch.long, device=device)
        self.valid = torch.zeros(batch_size, self.seq_len, dtype=torch.bool, device=device)
        self.lengths = torch.zeros(batch_size, dtype=torch.long)  # on the host: decides re-primes without a sync
        self.batch_index = torch.arange(batch_size, device=device)[:, None]
        self.is_linear = [False] * len(self.states)
        self.seen_tokens = 0  # columns consumed, what generate() slices its inputs by

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen_tokens

    def __len__(self) -> int:
        return len(self.states)

    def at(self, rows: torch.Tensor, valid: torch.Tensor | None, end: int) -> SlotBatch:
        return SlotBatch(rows, valid, end, self.batch_index)

    def at_slot(self, slot: int) -> SlotBatch:
        """One new real token per row, every row at `slot` (see SlotBatch.slot)."""
        return SlotBatch(None, None, slot + 1, self.batch_index, slot)

    def store(self, tokens: torch.Tensor, at: SlotBatch) -> None:
        """Remember the tokens written at slots `at.rows`, for a later re-prime."""
        if at.slot is not None:
            self.tokens[:, at.slot : at.end] = tokens  # (b, 1)
            self.valid[:, at.slot] = True
            return
        self.tokens[self.batch_index, at.rows] = tokens
        self.valid[self.batch_index, at.rows] = True if at.valid is None else at.valid

    def window(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The last L//2 tokens of full rows `rows`, and whether each is real (not a pad)."""
        return self.tokens[rows, self.seq_len - self.keep :], self.valid[rows, self.seq_len - self.keep :]

    def reorder_cache(self, beam_idx: torch.Tensor) -> None:
        """Keep rows `beam_idx` (new row i = old row beam_idx[i]), in place: what beam search asks after each step."""
        index = beam_idx.to(self.tokens.device)
        for state in self.states:
            for name, tensor in state.items():
                state[name] = tensor.index_select(0, index)
        self.tokens, self.valid = self.tokens.index_select(0, index), self.valid.index_select(0, index)
        self.lengths = self.lengths.index_select(0, beam_idx.cpu())

    def keep_rows(self, rows: list[int]) -> None:
        """Keep only rows `rows`, in that order (finished requests leave a continuous batch: serving/continuous.py)."""
        self.reorder_cache(torch.tensor(rows, dtype=torch.long))
        self.batch_index = torch.arange(len(rows), device=self.tokens.device)[:, None]

    @classmethod
    def join(cls, caches: list[MaskedMixerCache]) -> MaskedMixerCache:
        """One cache holding the rows of `caches` one after another (a request joins a continuous batch); each row
        keeps its own slots and length, which is what lets rows at different positions decode together."""
        first = caches[0]
        joined = cls.__new__(cls)
        joined.__dict__.update(first.__dict__)
        joined.states = [
            {name: torch.cat([c.states[i][name] for c in caches]) for name in state}
            for i, state in enumerate(first.states)
        ]
        joined.tokens = torch.cat([c.tokens for c in caches])
        joined.valid = torch.cat([c.valid for c in caches])
        joined.lengths = torch.cat([c.lengths for c in caches])
        joined.batch_index = torch.arange(len(joined.tokens), device=first.tokens.device)[:, None]
        joined.seen_tokens = max(c.seen_tokens for c in caches)
        return joined

    def replace_rows(self, rows: torch.Tensor, other: MaskedMixerCache) -> None:
        """Take rows `rows` from `other`, a cache of len(rows) re-primed rows."""
        for mine, theirs in zip(self.states, other.states):
            for name, tensor in mine.items():
                tensor[rows] = theirs[name]
        self.tokens[rows], self.valid[rows] = other.tokens, other.valid
        self.lengths[rows.cpu()] = other.lengths
