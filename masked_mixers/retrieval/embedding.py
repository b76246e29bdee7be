"""Text embeddings from a trained causal language model: its last hidden state at one position.

Positions (`POSITIONS`), counted per example from the attention mask, so they name the same
token whichever side the padding is on:

- "second-to-last": the token before the last real token. The paper's choice for mixers: a
  causal LM's output at the last real token predicts a padding label (-100) or nothing, so it is
  never trained, while the one before it is.
- "last-token": the last real (non-pad) token.
- "last": the last position of the fixed-length window, padding included (with left padding,
  the last real token).

Inputs are truncated to the model's context L (the mixer's seq_len, the transformer's
max_position_embeddings) and padded to a fixed width, so every example has the same shape whatever
its batch and an embedding does not depend on how the inputs are batched. The side follows how the
model saw text in training:

- families whose positions are rows of mixing matrices (`Capabilities.positions_are_rows`: the
  masked and linear mixers, the transfixer) learned each row for one position, so they are padded
  on the side they were trained with (runs/layout.py, the one owner of the padding side): on the
  right (text from position 0, the default and what packed training amounts to), or on the left to
  the full L (text ending at position L - 1, as `data.padding_side: left` trained it);
- every other family (Llama) is padded on the right: its positions then run from 0 as in packed
  training, and causality keeps the pads out of the real positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..core.errors import UserError
from ..core.files import save_safetensors
from ..core.progress import progress_bar
from ..models import CAUSAL_LM, context_length, family_of
from ..runs.layout import PADDING_SIDES, SCORE, input_side, pad_token_id, place
from ..runs.rundir import load_run
from .settings import POSITIONS


def load_language_model(model_dir: str | Path, device: str | torch.device = "cpu", trust_remote_code: bool = False):
    """(model, tokenizer) of a run folder (rundir.load_run), set up for embedding.

    Only language models embed text here (an autoencoder's hidden states are not next-token
    states). The tokenizer keeps the padding side the run trained with (runs/layout.py).
    """
    model, tokenizer = load_run(model_dir, trust_remote_code=trust_remote_code)
    if family_of(model).task != CAUSAL_LM:
        raise UserError(f"{model_dir}: a {family_of(model).name} model is not a language model; embeddings need one")
    model = model.to(device)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise UserError(f"{model_dir}: the tokenizer has neither a pad nor an eos token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def tokenize(
    tokenizer, texts: Sequence[str], length: int, side: str = "right", width: int | None = None
) -> dict[str, torch.Tensor]:
    """input_ids and attention_mask, (n, width): each text truncated to `length` tokens, padded on `side`.

    width defaults to `length`; a left-padded mixer gets its full context, so texts end at L - 1.
    The tokenizer's own padding_side is not consulted (the caller chose `side`).
    """
    width = length if width is None else width
    if side not in PADDING_SIDES or width < length:
        raise ValueError(f"need side 'left' or 'right' and width >= length (got {side!r}, {width} < {length})")
    encoded = tokenizer(list(texts), truncation=True, max_length=length)["input_ids"]  # n lists of <= length ids
    return place(encoded, width, side, pad_token_id(tokenizer))  # (n, width) each


def tokenize_for(model, tokenizer, texts: Sequence[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
    """`tokenize` laid out for this model: truncated to min(max_length, L), padded on its side (module docstring).

    Right padding pads to the truncation length; left padding pads to the full context L, so every
    text ends at position L - 1 as in training. Embedding and fine-tuning both tokenize through here.
    """
    length = min(max_length or context_length(model), context_length(model))
    side = input_side(model, tokenizer, SCORE)
    return tokenize(tokenizer, texts, length, side, context_length(model) if side == "left" else length)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, position: str) -> torch.Tensor:
    """(batch, t, d) hidden states -> (batch, d) at `position` of each example, for either padding side.

    Real tokens are one contiguous run of columns [first, last] (right padding: first = 0; left
    padding: last = t - 1); an example without real tokens reads column 0.
    """
    if position not in POSITIONS:
        raise UserError(f"position {position!r} is unknown (choose from {', '.join(POSITIONS)})")
    t = hidden.shape[1]
    cols = torch.arange(t, device=attention_mask.device).expand_as(attention_mask)  # (batch, t)
    real = attention_mask.bool()
    last = torch.where(real, cols, -1).max(dim=1).values  # (batch,) last real column, -1 if none
    first = torch.where(real, cols, t).min(dim=1).values  # (batch,) first real column, t if none
    index = {
        "second-to-last": torch.minimum(torch.maximum(last - 1, first), last).clamp(
            min=0
        ),  # one before last, never before first
        "last-token": last.clamp(min=0),
        "last": torch.full_like(last, t - 1),
    }[position]
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index.to(hidden.device)]


def embed_batch(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, position: str) -> torch.Tensor:
    """(batch, d) embeddings; differentiable, for fine-tuning as well as inference."""
    hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (b, t, d)
    return pool(hidden, attention_mask, position)


@torch.no_grad()
def embed_texts(
    model,
    tokenizer,
    texts: Sequence[str],
    position: str = "second-to-last",
    batch_size: int = 32,
    max_length: int | None = None,
    progress: bool = True,
    desc: str = "embed",
) -> torch.Tensor:
    """(len(texts), d) float32 embeddings on the CPU, computed `batch_size` texts at a time."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    chunks = []
    for start in progress_bar(range(0, len(texts), batch_size), desc=desc, disable=not progress, unit="batch"):
        batch = tokenize_for(model, tokenizer, texts[start : start + batch_size], max_length)  # (b, width) each
        batch = {k: v.to(device) for k, v in batch.items()}
        chunks.append(embed_batch(model, batch["input_ids"], batch["attention_mask"], position).float().cpu())
    model.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0, model.config.hidden_size)


def save_embeddings(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write named (n, d) tensors as safetensors, atomically (temporary file, then rename)."""
    save_safetensors(path, tensors, metadata)


def load_embeddings(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a file written by `save_embeddings`."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: embeddings file not found")
    with safe_open(path, framework="pt") as handle:
        metadata = handle.metadata() or {}
    return load_file(path), metadata
