"""Where a model's inputs sit in a fixed-width row: the one owner of `padding_side`.

Families whose positions are rows of mixing matrices (`Capabilities.positions_are_rows`: the
masked, linear and autoencoding mixers, the transfixer) learned each row for one position, so
their inputs go on the side they were trained with (`data.padding_side`):

- right (the default, and what packed training amounts to): text from position 0;
- left: text ending at the last column, as left-padded training put it.

Training records that side once (`record_padding_side`): in the tokenizer saved beside the model
(what generation, embedding and lm-eval read back) and, for rows families, in the model's config
(`config.padding_side`, which decides where a left-padded input sits: models/masked_mixer/positions.py).
Every other family is laid out for what the caller does with it: left for generation (transformers'
generate() appends after the last column and derives positions from the mask), right for scoring
and embedding (positions from 0, as in packed training).

Generation (generation/generate.py), embeddings (retrieval/embedding.py), lm-eval
(generation/harness.py) and data preparation (data/examples.py) all place rows through `place` /
`columns` here, and every side a user gives (config, --padding-side, a saved tokenizer) is checked
by `check_padding_side`. The model configs of standalone families check their own field too: their
code is saved beside the weights and must not import this package.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..core.errors import UserError
from ..models import family_of

PADDING_SIDES = ("right", "left")
GENERATE, SCORE = "generate", "score"  # what the caller does with the rows (non-rows families differ)


def check_padding_side(side, key: str = "padding_side") -> str:
    """`side` if it is one of PADDING_SIDES, else one line naming `key`."""
    if side not in PADDING_SIDES:
        raise UserError(f"{key}: {side!r} is not 'right' or 'left'")
    return side


def positions_are_rows(model) -> bool:
    """Whether `model`'s positions are mixing rows (False for a model of no family of this package)."""
    try:
        return family_of(model).capabilities.positions_are_rows
    except ValueError:
        return False


def trained_side(model, tokenizer) -> str:
    """The side a rows family was trained with: its config's record, else its tokenizer's (right when neither says)."""
    side = getattr(model.config, "padding_side", None) or getattr(tokenizer, "padding_side", None) or "right"
    return check_padding_side(side, "the tokenizer's padding_side")


def input_side(model, tokenizer, purpose: str = SCORE, override: str | None = None) -> str:
    """The side inputs go on for this model and `purpose` (GENERATE or SCORE); see the module docstring.

    `override` (generate's --padding-side) replaces a rows family's trained side; other families
    ignore it, since their layout follows from how transformers runs them.
    """
    if positions_are_rows(model):
        return check_padding_side(override, "padding_side") if override else trained_side(model, tokenizer)
    return "left" if purpose == GENERATE else "right"


def record_padding_side(model, tokenizer, side: str) -> None:
    """Write the training side where it is read back: the tokenizer (saved beside the model) and,
    for rows families, the model config (positions of left-padded inputs follow it)."""
    check_padding_side(side, "data.padding_side")
    tokenizer.padding_side = side
    tokenizer.init_kwargs["padding_side"] = side  # what save_pretrained writes (transformers 5 ignores the attribute)
    if positions_are_rows(model):
        model.config.padding_side = side


def columns(length: int, width: int, side: str) -> slice:
    """The columns a row of `length` tokens takes in a row of `width`, padded on `side`."""
    return slice(0, length) if side == "right" else slice(width - length, width)


def place(rows: Sequence[Sequence[int]], width: int, side: str, pad_token_id: int) -> dict[str, torch.Tensor]:
    """input_ids and attention_mask (n, width): each row of token ids on `side`, pads elsewhere."""
    ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)  # (n, width)
    mask = torch.zeros_like(ids)
    for i, tokens in enumerate(rows):
        cols = columns(len(tokens), width, side)
        ids[i, cols] = torch.as_tensor(list(tokens), dtype=torch.long)
        mask[i, cols] = 1
    return {"input_ids": ids, "attention_mask": mask}


def pad_token_id(tokenizer) -> int:
    """The id pads are written with: the tokenizer's pad token, else its eos, else 0 (masked anyway)."""
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if token_id is not None:
            return token_id
    return 0


__all__ = [
    "GENERATE",
    "PADDING_SIDES",
    "SCORE",
    "check_padding_side",
    "columns",
    "input_side",
    "pad_token_id",
    "place",
    "positions_are_rows",
    "record_padding_side",
    "trained_side",
]
