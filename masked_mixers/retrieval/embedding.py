"""Text embeddings from a trained causal language model: its last hidden state at one position.

Positions (`POSITIONS`), counted per example from the attention mask:

- "second-to-last": the token before the last real token. The paper's choice for mixers: a
  causal LM's output at the last real token predicts a padding label (-100) or nothing, so it is
  never trained, while the one before it is.
- "last-token": the last real (non-pad) token.
- "last": the last position of the fixed-length window, padding included.

Inputs are truncated and right-padded to the model's fixed context (the mixer's seq_len L, the
transformer's max_position_embeddings). Right padding leaves the real positions of both families
untouched (causal: position i never reads j > i; the mixer also zeroes padded inputs), and the
fixed width gives every example the same shape whatever its batch, so an embedding does not
depend on how the inputs are batched.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm

from ..errors import UserError
from ..files import save_safetensors
from ..rundir import load_run
from .settings import POSITIONS



def load_language_model(model_dir: str | Path, device: str | torch.device = "cpu"):
    """(model, tokenizer) of a run folder (rundir.load_run), set up for embedding.

    Only language models embed text here (an autoencoder's hidden states are not next-token
    states). The tokenizer is switched to right padding whatever side the run trained with:
    embeddings use fixed-width, right-padded inputs (see the module docstring).
    """
    from ..models import CAUSAL_LM, family_of

    model, tokenizer = load_run(model_dir)
    if family_of(model).task != CAUSAL_LM:
        raise UserError(f"{model_dir}: a {family_of(model).name} model is not a language model; embeddings need one")
    model = model.to(device)
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise UserError(f"{model_dir}: the tokenizer has neither a pad nor an eos token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def context_length(model) -> int:
    """The longest input the model takes: a mixer's seq_len, a transformer's position limit."""
    config = model.config
    return getattr(config, "seq_len", None) or config.max_position_embeddings


def tokenize(tokenizer, texts: Sequence[str], length: int) -> dict[str, torch.Tensor]:
    """input_ids and attention_mask, (n, length): truncated and right-padded to `length`."""
    if tokenizer.padding_side != "right":
        raise ValueError("embeddings need right padding (see the module docstring)")
    encoded = tokenizer(list(texts), padding="max_length", truncation=True, max_length=length, return_tensors="pt")
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, position: str) -> torch.Tensor:
    """(batch, t, d) hidden states -> (batch, d) at `position` of each example."""
    if position not in POSITIONS:
        raise UserError(f"position {position!r} is unknown (choose from {', '.join(POSITIONS)})")
    real = attention_mask.sum(dim=1)  # (batch,) real tokens per example
    index = {
        "second-to-last": (real - 2).clamp(min=0),
        "last-token": (real - 1).clamp(min=0),
        "last": torch.full_like(real, hidden.shape[1] - 1),
    }[position]
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


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
    length = min(max_length or context_length(model), context_length(model))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    chunks = []
    for start in tqdm(range(0, len(texts), batch_size), desc=desc, disable=not progress, unit="batch"):
        batch = tokenize(tokenizer, texts[start : start + batch_size], length)
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
