"""Positions and the incremental-decoding cache of a masked mixer.

Positions ("slots"). A masked mixer has no positional encoding: a token's position is the index
of the mixing-matrix row it uses. Without an attention mask, position = column. With one:

- leading pads (left padding) keep their positions, as in training: the text after them sits
  where it sat when the model was trained with left-padded examples;
- a pad after a real token (right padding, or the gap between a right-padded prompt and the
  tokens `generate()` appends after it) takes no position: the next real token continues right
  after the previous one, and the pad's output column reports the previous real token's output
  (so `logits[:, -1]` of a right-padded prompt predicts each row's next token).

Sliding window (generation only). The mixing matrices are L x L, so a row never holds more than
L = seq_len positions. When a token would land at position L, the row keeps its last L // 2
tokens, recomputes them once at positions 0 .. L//2 - 1 ("re-prime") and carries on; the window
then grows back to L before the next re-prime. Text can be arbitrarily long, and each re-prime
costs one forward over L // 2 tokens per L - L // 2 generated ones. `window_length` gives the
window a row of n positions ends with, so a forward without a cache sees the same tokens.

The cache. A masked mixer is causal, so a position's input to every layer never changes while it
stays at the same position. `MaskedMixerCache` keeps, per layer and row, what the token mixing
reads from earlier positions (its normalised, padding-masked input; for the expanded mixing also
the wide hidden layer; for the multi-head mixing the projected heads), preallocated for L slots,
plus what each block's decoding step reads (the masked mixing weights and biases, the norm and
feed-forward parameters), gathered once. On CPU the cached mixing runs in fp32 even for a
bf16 model (CPU bf16 batched mat-vec kernels are several times slower than fp32 ones). A new token then costs one row of each mixing
matrix times the cached inputs (O(t d) per layer) plus the feed-forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SlotBatch:
    """Where the new tokens of one forward go: slots `rows` (b, t), `valid` (b, t) or None when all
    are real tokens (a decoding step), `end` = max row + 1.

    batch_index: (b, 1) row numbers, to index a (b, slots, ...) cache together with `rows`.
    """

    rows: torch.Tensor
    valid: torch.Tensor | None
    end: int
    batch_index: torch.Tensor


@dataclass
class TokenPositions:
    """Positions of the columns of a batch (see the module docstring).

    write: (b, t) slot each column's token goes to, -1 for pads and tokens left of the window;
    read: (b, t) slot whose output each column reports; lengths: (b,) slots each row occupies.
    """

    write: torch.Tensor
    read: torch.Tensor
    lengths: torch.Tensor


def window_length(n: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Positions a row of n positions holds after the sliding window: n up to L, then L//2 + 1 .. L, repeating."""
    keep = seq_len // 2
    slid = keep + 1 + torch.remainder(n - seq_len - 1, seq_len - keep)
    return torch.where(n <= seq_len, n, slid)


def token_positions(attention_mask: torch.Tensor, seq_len: int, slide: bool = False) -> TokenPositions:
    """Slot of every column of a (b, t) 0/1 mask; with `slide`, keep only each row's sliding window."""
    valid = attention_mask.bool()
    b, t = valid.shape
    col = torch.arange(t, device=valid.device).expand(b, t)
    first = torch.where(valid.any(1), valid.int().argmax(1), t)[:, None]  # first real column
    # leading pads occupy their column; later columns follow the real tokens (a pad repeats the last one)
    read = torch.where(col < first, col, first + valid.cumsum(1) - 1)
    lengths = read[:, -1] + 1 if t else torch.zeros(b, dtype=torch.long, device=valid.device)
    if slide:
        start = lengths - window_length(lengths, seq_len)
        read, lengths = read - start[:, None], lengths - start
    elif t and int(lengths.max()) > seq_len:
        raise ValueError(
            f"input has {int(lengths.max())} positions but this masked mixer was built for seq_len={seq_len}; "
            "shorten the input (generate() slides a window instead)"
        )
    write = torch.where(valid & (read >= 0), read, -1)
    return TokenPositions(write=write, read=read.clamp(min=0), lengths=lengths)


def to_slots(values: torch.Tensor, write: torch.Tensor, num_slots: int) -> torch.Tensor:
    """Scatter (b, t, ...) column values to (b, num_slots, ...) slots; unwritten slots are zero."""
    b = values.shape[0]
    index = torch.where(write < 0, num_slots, write)  # spare slot num_slots takes what is dropped
    out = values.new_zeros((b, num_slots + 1, *values.shape[2:]))
    out = out.index_put((torch.arange(b, device=values.device)[:, None], index), values)
    return out[:, :num_slots]


def from_slots(values: torch.Tensor, read: torch.Tensor) -> torch.Tensor:
    """Gather (b, S, d) slot values back to (b, t, d) columns."""
    return torch.gather(values, 1, read[..., None].expand(-1, -1, values.shape[-1]))


class MaskedMixerCache:
    """Per-layer token-mixing inputs of every position of each row's window (see the module docstring).

    Made by `MaskedMixerForCausalLM.forward(..., use_cache=True)` and handed back as `outputs.cache`,
    which is how transformers' `generate()` carries it from step to step. A cache belongs to one
    generation: it keeps the masked weights of the model as they were when it was made.
    """

    is_compileable = False
    is_croppable = False

    def __init__(self, model, batch_size: int, dtype: torch.dtype, device, weights: list | None = None):
        config = model.config
        self.seq_len, self.dtype = config.seq_len, dtype
        self.keep = config.seq_len // 2
        mixings = [layer.token_mixing for layer in model.layers]
        state_dtype = torch.float32 if torch.device(device).type == "cpu" else dtype
        self.weights = weights if weights is not None else [layer.decode_weights(state_dtype) for layer in model.layers]
        self.states = [m.new_state(batch_size, config.hidden_size, state_dtype, device) for m in mixings]
        self.tokens = torch.zeros(batch_size, self.seq_len, dtype=torch.long, device=device)
        self.valid = torch.zeros(batch_size, self.seq_len, dtype=torch.bool, device=device)
        self.lengths = torch.zeros(batch_size, dtype=torch.long)  # on the host: decides re-primes without a sync
        self.batch_index = torch.arange(batch_size, device=device)[:, None]
        self.is_linear = [False] * len(mixings)
        self.seen_tokens = 0  # columns consumed, what generate() slices its inputs by

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen_tokens

    def __len__(self) -> int:
        return len(self.states)

    def at(self, rows: torch.Tensor, valid: torch.Tensor | None, end: int) -> SlotBatch:
        return SlotBatch(rows, valid, end, self.batch_index)

    def store(self, tokens: torch.Tensor, at: SlotBatch) -> None:
        """Remember the tokens written at slots `at.rows`, for a later re-prime."""
        self.tokens[self.batch_index, at.rows] = tokens
        self.valid[self.batch_index, at.rows] = True if at.valid is None else at.valid

    def window(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The last L//2 tokens of full rows `rows`, and whether each is real (not a pad)."""
        return self.tokens[rows, self.seq_len - self.keep :], self.valid[rows, self.seq_len - self.keep :]

    def replace_rows(self, rows: torch.Tensor, other: MaskedMixerCache) -> None:
        """Take rows `rows` from `other`, a cache of len(rows) re-primed rows."""
        for mine, theirs in zip(self.states, other.states):
            for name, tensor in mine.items():
                tensor[rows] = theirs[name]
        self.tokens[rows], self.valid[rows] = other.tokens, other.valid
        self.lengths[rows.cpu()] = other.lengths
