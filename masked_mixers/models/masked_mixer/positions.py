"""Positions that follow the attention mask, for every family whose positions are mixing rows.

A masked mixer (and the transfixer's token mixing) has position-specific weights: a token's
position is the index of the mixing-matrix row it uses, so a position that moves with the batch
changes the model. Without an attention mask, position = column. With one, columns are mapped to
positions ("slots"):

- leading pads (left padding) keep their positions, as in training: the text after them sits
  where it sat when the model was trained with left-padded examples. A model trained on
  right-padded examples says so (`leading_pads=False`, from its config's `padding_side`): then
  leading pads take no position either, so a left-padded prompt (the text-generation pipeline and
  lm-eval pad left, whatever the tokenizer says) sits at positions 0.. as it does alone; a
  leading pad's output column then reports position 0's output (a pad's output is never used);
- a pad after a real token (right padding, or the gap between a right-padded prompt and the
  tokens `generate()` appends after it) takes no position: the next real token continues right
  after the previous one, and the pad's output column reports the previous real token's output
  (so `logits[:, -1]` of a right-padded prompt predicts each row's next token).

A model scatters its columns to slots (`to_slots`), runs its layers on the slots with the slot
validity as padding mask, and gathers the outputs back to columns (`from_slots`); so a prompt
gives the same outputs batched with longer or shorter prompts as alone (generation.py lays the
prompts out so that this holds).

Sliding window (generation only, models/masked_mixer/cache.py). The mixing matrices are L x L, so
a row never holds more than L = seq_len positions. When a token would land at position L, the
row keeps its last L // 2 tokens, recomputes them at positions 0 .. L//2 - 1 and carries on.
`window_length` gives the window a row of n positions ends with, so a forward without a cache
sees the same tokens as the cached one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TokenPositions:
    """Positions of the columns of a batch (see the module docstring).

    write: (b, t) slot each column's token goes to, -1 for pads and tokens left of the window;
    read: (b, t) slot whose output each column reports; lengths: (b,) slots each row occupies.
    """

    write: torch.Tensor
    read: torch.Tensor
    lengths: torch.Tensor

    @property
    def num_slots(self) -> int:
        """S, the slots of the longest row: the width of the slot tensors."""
        return int(self.lengths.max()) if self.lengths.numel() else 0

    def scatter(self, values: torch.Tensor) -> torch.Tensor:
        """(b, t, ...) column values -> (b, S, ...) slots; slots no column writes are zero."""
        return to_slots(values, self.write, self.num_slots)

    def gather(self, values: torch.Tensor) -> torch.Tensor:
        """(b, S, d) slot outputs -> (b, t, d) columns."""
        return from_slots(values, self.read)

    def valid(self) -> torch.Tensor:
        """(b, S) True where a slot holds a real token (its padding mask)."""
        return self.scatter(self.write >= 0)


def window_length(n: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Positions a row of n positions holds after the sliding window: n up to L, then L//2 + 1 .. L, repeating."""
    keep = seq_len // 2
    slid = keep + 1 + torch.remainder(n - seq_len - 1, seq_len - keep)
    return torch.where(n <= seq_len, n, slid)


def token_positions(
    attention_mask: torch.Tensor, seq_len: int, slide: bool = False, leading_pads: bool = True
) -> TokenPositions:
    """Slot of every column of a (b, t) 0/1 mask; with `slide`, keep only each row's sliding window.

    leading_pads: whether leading pads keep their positions (a model trained on left-padded
    examples, or one that does not say) or take none (trained on right-padded examples).
    """
    valid = attention_mask.bool()
    b, t = valid.shape
    col = torch.arange(t, device=valid.device).expand(b, t)
    first = torch.where(valid.any(1), valid.int().argmax(1), t)[:, None]  # first real column
    if not leading_pads:
        first = torch.zeros_like(first)  # every pad is skipped: positions count real tokens only
    # leading pads occupy their column; later columns follow the real tokens (a pad repeats the last one)
    read = torch.where(col < first, col, first + valid.cumsum(1) - 1)
    lengths = read[:, -1] + 1 if t else torch.zeros(b, dtype=torch.long, device=valid.device)
    if slide:
        start = lengths - window_length(lengths, seq_len)
        read, lengths = read - start[:, None], lengths - start
    elif t and int(lengths.max()) > seq_len:
        raise ValueError(
            f"input has {int(lengths.max())} positions but this model was built for seq_len={seq_len}; "
            "shorten the input (a masked mixer's generate() slides a window instead)"
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


__all__ = ["TokenPositions", "from_slots", "to_slots", "token_positions", "window_length"]
