"""Documents -> fixed-length token examples of length L (seq_len), the only shape a mixer takes.

Two layouts:
- truncate + pad: one example per document, cut to L tokens and padded to L. Pad positions get
  attention_mask 0 and label -100. Right padding keeps every real token at the position it has
  in an unpadded input; left padding shifts them, so a model must be used the way it was trained.
- packing: documents are concatenated end to end, an eos after each, and cut into L-token blocks
  (the remainder of each shard of documents, under L tokens, is dropped). No padding, no waste.

Storage is compact (format 2): only the real tokens are stored, once, in the smallest unsigned
integer type that holds the vocabulary (`token_dtype`), plus num_bytes per example. A packed
example is a fixed-size list of L ids; a padded one is the variable-length list of its real ids
(its length is the number of real tokens). `expand_batch` derives the int64 input_ids,
attention_mask and labels of the earlier all-int64 layout when a batch is read, and `as_examples`
installs it as the dataset's transform, so consumers index rows and slices as before. About 2
bytes per token on disk instead of 24.

Every example records num_bytes, the UTF-8 bytes of the text its real tokens cover, so that
evaluation can report bits per byte, a measure that does not depend on the tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from itertools import chain

import datasets
import numpy as np
from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100  # label of positions that carry no loss (transformers' convention)
EXAMPLE_COLUMNS = ("input_ids", "attention_mask", "labels", "num_bytes")


def token_dtype(vocab_size: int) -> str:
    """The smallest stored integer type for ids below `vocab_size`: uint16 up to 65,536 entries."""
    return "uint16" if vocab_size <= 1 << 16 else "uint32"


@dataclass(frozen=True)
class Layout:
    """How stored rows become examples: L, packed or padded (side, pad id)."""

    seq_len: int
    packed: bool
    padding_side: str = "right"
    pad_token_id: int = 0

    def features(self, vocab_size: int) -> datasets.Features:
        """Arrow schema of stored rows: L ids (packed) or up to L real ids (padded), and num_bytes."""
        ids = datasets.List(datasets.Value(token_dtype(vocab_size)), length=self.seq_len if self.packed else -1)
        return datasets.Features({"input_ids": ids, "num_bytes": datasets.Value("uint32")})

    def to_dict(self) -> dict:
        return dict(seq_len=self.seq_len, packed=self.packed, padding_side=self.padding_side, pad_token_id=self.pad_token_id)


def token_bytes(text: str, offsets: list[tuple[int, int]]) -> np.ndarray:
    """UTF-8 bytes of `text` each token accounts for; they sum to the bytes up to the last token.

    A token covers the characters from the previous token's end to its own end, so spaces the
    tokenizer folds into a neighbour are counted once, and two byte-level tokens sharing one
    multi-byte character give it to the first.
    """
    flat = np.fromiter(chain.from_iterable(offsets), dtype=np.int64, count=2 * len(offsets))  # (start, end) pairs, read in C
    ends = np.maximum.accumulate(flat[1::2]) if len(offsets) else flat
    if not text.isascii():
        code_points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        widths = 1 + (code_points >= 0x80) + (code_points >= 0x800) + (code_points >= 0x10000)
        ends = np.concatenate([[0], np.cumsum(widths)])[ends]  # character offset -> byte offset
    return np.diff(ends, prepend=0)


def encode_documents(texts: list[str], tokenizer: PreTrainedTokenizerBase, add_bos: bool, add_eos: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """(token ids, per-token UTF-8 byte counts) of each document, with bos/eos (0 bytes) as asked.

    Calls the `tokenizers` backend's encode_batch directly (what the transformers tokenizer calls
    too): the same ids, without building a BatchEncoding of Python lists first.
    """
    encodings = tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False)
    head = [tokenizer.bos_token_id] if add_bos else []
    tail = [tokenizer.eos_token_id] if add_eos else []
    out = []
    for text, encoding in zip(texts, encodings):
        ids, nbytes = encoding.ids, token_bytes(text, encoding.offsets)
        out.append((np.asarray(head + ids + tail, dtype=np.int64), np.concatenate([np.zeros(len(head), np.int64), nbytes, np.zeros(len(tail), np.int64)])))
    return out


def pad_rows(encoded: list[tuple[np.ndarray, np.ndarray]], seq_len: int) -> dict:
    """One stored row per document: its first seq_len ids (no padding stored) and their bytes."""
    return {
        "input_ids": [ids[:seq_len] for ids, _ in encoded],
        "num_bytes": np.asarray([int(nbytes[:seq_len].sum()) for _, nbytes in encoded], dtype=np.int64),
    }


def pack_rows(encoded: list[tuple[np.ndarray, np.ndarray]], seq_len: int) -> dict:
    """Concatenate the documents (eos already after each) and cut the stream into seq_len blocks."""
    if not encoded:
        return {"input_ids": np.zeros((0, seq_len), np.int64), "num_bytes": np.zeros(0, np.int64)}
    stream = np.concatenate([ids for ids, _ in encoded])
    stream_bytes = np.concatenate([nbytes for _, nbytes in encoded])
    blocks = len(stream) // seq_len
    return {
        "input_ids": stream[: blocks * seq_len].reshape(blocks, seq_len),  # (blocks, L)
        "num_bytes": stream_bytes[: blocks * seq_len].reshape(blocks, seq_len).sum(axis=1),
    }


def expand_batch(batch: dict, layout: Layout) -> dict:
    """Stored rows -> int64 input_ids, attention_mask, labels (n, L) and num_bytes, as numpy arrays.

    Packed rows are all real tokens (mask 1, labels = ids); padded rows are placed on the padding
    side with pad ids, mask 0 and label -100 after (right) or before (left) them. Columns the
    batch lacks (a caller removed num_bytes) are left out.
    """
    rows, L = batch["input_ids"], layout.seq_len
    out = {}
    if layout.packed:
        ids = np.asarray(rows, dtype=np.int64).reshape(len(rows), L)  # (n, L)
        out.update(input_ids=ids, attention_mask=np.ones_like(ids), labels=ids.copy())
    else:
        ids = np.full((len(rows), L), layout.pad_token_id, dtype=np.int64)
        labels = np.full((len(rows), L), IGNORE_INDEX, dtype=np.int64)
        mask = np.zeros((len(rows), L), dtype=np.int64)
        for i, row in enumerate(rows):
            cols = slice(0, len(row)) if layout.padding_side == "right" else slice(L - len(row), L)
            ids[i, cols] = labels[i, cols] = row
            mask[i, cols] = 1
        out.update(input_ids=ids, attention_mask=mask, labels=labels)
    if "num_bytes" in batch:
        out["num_bytes"] = np.asarray(batch["num_bytes"], dtype=np.int64)
    return out


def as_examples(stored: datasets.Dataset, layout: Layout) -> datasets.Dataset:
    """The stored rows seen as full examples: rows and slices come back expanded (expand_batch).

    Column access by name serves stored columns only (input_ids, num_bytes); read a slice
    (`dataset[:n]`) for attention_mask and labels.
    """
    return stored.with_transform(partial(expand_batch, layout=layout))


def first_examples(dataset: datasets.Dataset, count: int, columns=EXAMPLE_COLUMNS[:3]) -> dict:
    """The first `count` examples as tensors (column -> (count, L)), of either layout.

    A compact store expands the slice (as_examples); a dataset of full rows is read as is.
    Columns the dataset lacks are left out.
    """
    import torch

    rows = dataset[: min(count, len(dataset))]
    return {k: torch.as_tensor(np.asarray(rows[k], dtype=np.int64)) for k in columns if k in rows}
