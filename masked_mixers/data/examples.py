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

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from itertools import chain

import datasets
import numpy as np
from transformers import PreTrainedTokenizerBase

from ..runs.layout import columns

IGNORE_INDEX = -100  # label of positions that carry no loss (transformers' convention)
PIECE_CHARS = 1 << 16  # a packed document longer than twice this is encoded in pieces of 1-2x this many characters
_PIECE_END = re.compile(r"(?<=\S) ")  # a space after a non-space: no byte-level or Metaspace pre-token crosses it
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
        return dict(
            seq_len=self.seq_len, packed=self.packed, padding_side=self.padding_side, pad_token_id=self.pad_token_id
        )


def utf8_length(text: str) -> int:
    """len(text.encode("utf-8")), without encoding ASCII text (most of an English corpus)."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def token_bytes(text: str, offsets: list[tuple[int, int]]) -> np.ndarray:
    """UTF-8 bytes of `text` each token accounts for; they sum to the bytes up to the last token.

    A token covers the characters from the previous token's end to its own end, so spaces the
    tokenizer folds into a neighbour are counted once, and two byte-level tokens sharing one
    multi-byte character give it to the first.
    """
    flat = np.fromiter(
        chain.from_iterable(offsets), dtype=np.int64, count=2 * len(offsets)
    )  # (start, end) pairs, read in C
    ends = np.maximum.accumulate(flat[1::2]) if len(offsets) else flat
    if not text.isascii():
        code_points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        widths = 1 + (code_points >= 0x80) + (code_points >= 0x800) + (code_points >= 0x10000)
        ends = np.concatenate([[0], np.cumsum(widths)])[ends]  # character offset -> byte offset
    return np.diff(ends, prepend=0)


class EncodedDocument:
    """One document's ids (with bos/eos) and the UTF-8 bytes of text any prefix of them covers.

    prefix_bytes(k) equals the sum of token_bytes over the first k real tokens, read from one
    offset (the k-th token's end) instead of summing every token's: the end offsets the
    `tokenizers` backend gives are in text order (non-decreasing), so the running maximum
    token_bytes takes is the k-th end itself. Per-token byte counts cost about a quarter of the
    encoding time; a packed or padded example needs the prefix at one or two cut points per
    document. A document sent back from a worker process (pickled) cannot take its Encoding
    along, so it carries the cumulative per-token counts instead (the same numbers).
    """

    __slots__ = ("ids", "head", "count", "_text", "_encoding", "_byte_ends")

    def __init__(self, text: str, encoding, head: list[int], tail: list[int]):
        self.ids = np.asarray(head + encoding.ids + tail, dtype=np.int64)
        self.head, self.count = len(head), len(encoding)  # bos tokens, real tokens
        self._text, self._encoding, self._byte_ends = text, encoding, None

    def prefix_bytes(self, k: int) -> int:
        """UTF-8 bytes of the text covered by ids[:k] (bos and eos cover none)."""
        k = min(max(k - self.head, 0), self.count)  # real tokens among the first k ids
        if k == 0:
            return 0
        if self._byte_ends is not None:
            return int(self._byte_ends[k - 1])
        return utf8_length(self._text[: self._encoding.token_to_chars(k - 1)[1]])  # up to that token's end

    def __getstate__(self):
        byte_ends = self._byte_ends
        if byte_ends is None:
            byte_ends = np.cumsum(token_bytes(self._text, self._encoding.offsets))
        return self.ids, self.head, self.count, byte_ends

    def __setstate__(self, state) -> None:
        self.ids, self.head, self.count, self._byte_ends = state
        self._text = self._encoding = None

    @classmethod
    def from_pieces(cls, pieces: Iterator[str], backend, head: list[int], tail: list[int]) -> EncodedDocument:
        """One document encoded piece by piece (`backend.encode` per piece): its ids and byte prefixes,
        with each piece's Encoding dropped once read, so memory holds ids, not whole Encodings."""
        ids, widths = [np.asarray(head, dtype=np.int64)], []
        for piece in pieces:
            encoding = backend.encode(piece, add_special_tokens=False)
            ids.append(np.asarray(encoding.ids, dtype=np.int64))
            widths.append(token_bytes(piece, encoding.offsets))
        doc = cls.__new__(cls)
        real = sum(len(w) for w in widths)
        doc.__setstate__(
            (
                np.concatenate(ids + [np.asarray(tail, dtype=np.int64)]),
                len(head),
                real,
                np.cumsum(np.concatenate(widths)),
            )
        )
        return doc


def piece_end(text: str, start: int, size: int) -> int:
    """Where the piece of `text` from `start` ends: before the first space that follows a non-space
    `size` or more characters on, at most 2 * size characters on (a hard cut in text without such a
    space there), or at the end of the text when that is within 2 * size characters."""
    if len(text) - start <= 2 * size:
        return len(text)
    found = _PIECE_END.search(text, start + size, start + 2 * size)
    return found.start() if found else start + 2 * size


def text_pieces(text: str, size: int) -> Iterator[str]:
    """`text` in consecutive pieces of size to 2 * size characters (the last one may be shorter), cut by piece_end.

    For byte-level BPE (the tokenizers this package trains, GPT-2's) a cut before such a space is a
    pre-token boundary, and merges never cross one, so the pieces' ids joined equal the whole text's;
    so they do for the SentencePiece tokenizers load_tokenizer builds (leading spaces folded into one
    "▁"), checked in tests/test_data.py. A hard cut may change the tokens on either side of it."""
    start = 0
    while start < len(text):
        end = piece_end(text, start, size)
        yield text[start:end]
        start = end


def max_token_chars(tokenizer: PreTrainedTokenizerBase) -> int:
    """The longest vocabulary entry: no token covers more characters of text than this (a byte-level
    entry spells one byte per character; a byte covers at most one character)."""
    cached = getattr(tokenizer, "_masked_mixers_max_token_chars", None)
    if cached is None:
        cached = max(map(len, tokenizer.get_vocab()), default=1)
        tokenizer._masked_mixers_max_token_chars = cached
    return cached


def encode_documents(
    texts: list[str], tokenizer: PreTrainedTokenizerBase, add_bos: bool, add_eos: bool, keep: int | None = None
) -> list[EncodedDocument]:
    """Each document's ids, with bos/eos (0 bytes) as asked, and its byte prefixes.

    Calls the `tokenizers` backend's encode_batch directly (what the transformers tokenizer calls
    too): the same ids, without building a BatchEncoding of Python lists first.

    Work and memory per document are bounded whatever its length. `keep`: only the first `keep` ids
    of each document are used (the padded layout); a document longer than twice the characters
    those can cover, `(keep + 1) * max_token_chars`, is encoded from a prefix of that many to twice
    that many characters, cut before a space (piece_end). With `keep` None (packing, every token used)
    a document over 2 * PIECE_CHARS characters is encoded in pieces (text_pieces). Shorter
    documents are encoded whole, as before.
    """
    backend = tokenizer.backend_tokenizer
    size = PIECE_CHARS if keep is None else (keep + 1) * max_token_chars(tokenizer)
    long = {i for i, text in enumerate(texts) if len(text) > 2 * size}
    encodings = iter(backend.encode_batch([t for i, t in enumerate(texts) if i not in long], add_special_tokens=False))
    head = [tokenizer.bos_token_id] if add_bos else []
    tail = [tokenizer.eos_token_id] if add_eos else []
    docs = []
    for i, text in enumerate(texts):
        if i not in long:
            docs.append(EncodedDocument(text, next(encodings), head, tail))
        elif keep is None:
            docs.append(EncodedDocument.from_pieces(text_pieces(text, size), backend, head, tail))
        else:  # the prefix covers more than `keep` tokens, so the eos after it is never kept
            prefix = text[: piece_end(text, 0, size)]
            docs.append(EncodedDocument(prefix, backend.encode(prefix, add_special_tokens=False), head, tail))
    return docs


def pad_rows(encoded: list[EncodedDocument], seq_len: int) -> dict:
    """One stored row per document: its first seq_len ids (no padding stored) and their bytes."""
    return {
        "input_ids": [doc.ids[:seq_len] for doc in encoded],
        "num_bytes": np.asarray([doc.prefix_bytes(seq_len) for doc in encoded], dtype=np.int64),
    }


def pack_rows(encoded: list[EncodedDocument], seq_len: int) -> dict:
    """Concatenate the documents (eos already after each) and cut the stream into seq_len blocks.

    A block's bytes are the stream's byte prefix at its end minus that at its start; the prefix
    at a cut is the whole documents before it plus a prefix of the document it falls in.
    """
    if not encoded:
        return {"input_ids": np.zeros((0, seq_len), np.int64), "num_bytes": np.zeros(0, np.int64)}
    stream = np.concatenate([doc.ids for doc in encoded])
    blocks = len(stream) // seq_len
    doc_starts = np.cumsum([0] + [len(doc.ids) for doc in encoded])  # (documents + 1,) token positions
    bytes_before = np.cumsum([0] + [doc.prefix_bytes(len(doc.ids)) for doc in encoded])  # same, in bytes
    cuts = np.arange(blocks + 1) * seq_len
    inside = np.searchsorted(doc_starts, cuts, side="right") - 1  # the document each cut falls in
    prefix = np.array(
        [
            bytes_before[d] + (encoded[d].prefix_bytes(int(c - doc_starts[d])) if d < len(encoded) else 0)
            for c, d in zip(cuts, inside)
        ],
        dtype=np.int64,
    )
    return {
        "input_ids": stream[: blocks * seq_len].reshape(blocks, seq_len),
        "num_bytes": np.diff(prefix),
    }  # (blocks, L), (blocks,)


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
            cols = columns(len(row), L, layout.padding_side)  # runs/layout.py: the one placement rule
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
