"""Tokenizers: train a byte-level BPE with `tokenizers`, or load one a user brings.

Whatever the origin, the result is a transformers fast tokenizer with an end-of-text token
(used as eos and bos) and a pad token, so that it saves with `save_pretrained` beside a model
and reloads with `AutoTokenizer`. Special tokens are never added by the tokenizer itself when
data is prepared: `prepare_data` places bos/eos explicitly, the same way for every tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import datasets
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from ..core.errors import UserError, reason
from .corpus import EOT_MARKER, file_identity

PAD_TOKEN = "<|pad|>"
# end-of-text spellings of common tokenizers, tried in order when a bare tokenizer.json names none
_EOS_CANDIDATES = (EOT_MARKER, "</s>", "<eos>", "<|eos|>", "[SEP]")
_PAD_CANDIDATES = (PAD_TOKEN, "<pad>", "[PAD]")


def _batches(texts: Iterable[str] | datasets.Dataset, size: int = 1000) -> Iterator[list[str]]:
    if isinstance(texts, datasets.Dataset):
        for batch in texts.select_columns(["text"]).iter(batch_size=size):
            yield batch["text"]
        return
    batch = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def train_tokenizer(texts: Iterable[str] | datasets.Dataset, vocab_size: int = 4096) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE of `vocab_size` tokens (special tokens included) on `texts`.

    Byte level: every string is encodable (no unknown token) and decoding is lossless.
    """
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + 2:
        raise UserError(
            f"data.vocab_size: {vocab_size} is too small for a byte-level BPE (at least {len(alphabet) + 2})"
        )
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT_MARKER, PAD_TOKEN],
        initial_alphabet=alphabet,
        show_progress=False,
    )
    failures: list[Exception] = []

    def batches() -> Iterator[list[str]]:
        # an error raised inside an iterator the Rust trainer pulls from would reach us rewrapped;
        # keep the original (a UserError naming a file) and raise it once training returns
        try:
            yield from _batches(texts)
        except Exception as err:
            failures.append(err)

    backend.train_from_iterator(
        batches(), trainer=trainer, length=len(texts) if isinstance(texts, datasets.Dataset) else None
    )
    if failures:
        raise failures[0]
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=EOT_MARKER, eos_token=EOT_MARKER, pad_token=PAD_TOKEN
    )


def _from_tokenizer_json(path: Path) -> PreTrainedTokenizerFast:
    """A bare tokenizer.json names no special roles: pick eos/pad among the usual spellings."""
    if (path.parent / "tokenizer_config.json").is_file():
        return _auto(str(path.parent))
    try:
        tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(path))
    except Exception as err:  # malformed JSON or an unknown model type
        raise UserError(f"{path}: not a tokenizers tokenizer.json ({reason(err)})") from None
    vocab = tokenizer.get_vocab()
    eos = next((t for t in _EOS_CANDIDATES if t in vocab), None)
    pad = next((t for t in _PAD_CANDIDATES if t in vocab), None)
    tokenizer.add_special_tokens({"eos_token": eos or EOT_MARKER, **({"pad_token": pad} if pad else {})})
    if tokenizer.bos_token is None:
        tokenizer.bos_token = tokenizer.eos_token
    return tokenizer


def _from_sentencepiece(path: Path) -> PreTrainedTokenizerFast:
    """Convert a SentencePiece .model (bos/eos/unk from its trainer spec) to a fast tokenizer."""
    try:
        kwargs = PreTrainedTokenizerFast.convert_to_native_format(vocab_file=str(path))
        return PreTrainedTokenizerFast(**kwargs)
    except Exception as err:  # sentencepiece / protobuf parse errors
        raise UserError(f"{path}: not a SentencePiece model ({reason(err)})") from None


def _auto(name: str) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(name)
    except Exception as err:  # missing files, unknown hub name, no network
        raise UserError(f"{name}: could not load tokenizer ({reason(err)})") from None


def _ensure_special_tokens(tokenizer: PreTrainedTokenizerBase, where: str) -> PreTrainedTokenizerBase:
    """eos must exist (documents end with it); pad defaults to eos so the vocabulary does not grow.

    Pad positions are masked out of attention and loss, so sharing eos's id is harmless.
    """
    if not tokenizer.is_fast:
        raise UserError(f"{where}: only fast (tokenizers-backed) tokenizers are supported")
    if tokenizer.eos_token is None:
        raise UserError(f"{where}: the tokenizer has no end-of-text (eos) token")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.bos_token is None:
        tokenizer.bos_token = tokenizer.eos_token
    return tokenizer


def _local_path(spec: str) -> Path | None:
    path = Path(spec).expanduser()
    if path.exists():
        return path.resolve()
    if path.suffix in (".json", ".model") or spec.startswith(("/", "./", "../", "~")):
        raise UserError(f"{spec}: tokenizer file not found")
    return None


def load_tokenizer(spec: str) -> PreTrainedTokenizerBase:
    """Load a tokenizer.json, a directory saved with save_pretrained, a SentencePiece .model or a hub name."""
    path = _local_path(spec)
    if path is None:
        tokenizer = _auto(spec)
    elif path.is_dir():
        tokenizer = _auto(str(path))
    elif path.suffix == ".model":
        tokenizer = _from_sentencepiece(path)
    elif path.suffix == ".json":
        tokenizer = _from_tokenizer_json(path)
    else:
        raise UserError(f"{spec}: unsupported tokenizer file (use tokenizer.json, a directory, a .model or a hub name)")
    return _ensure_special_tokens(tokenizer, spec)


def tokenizer_identity(spec: str | None, vocab_size: int) -> dict:
    """The part of a cache fingerprint that says which tokenizer was used (files by size and time)."""
    if spec is None:
        return {"train": "byte-level-bpe", "vocab_size": vocab_size}
    path = _local_path(spec)
    if path is None:
        return {"hub": spec}
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {"files": [file_identity(p) for p in files]}
