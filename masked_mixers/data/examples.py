"""Documents -> fixed-length token examples of length L (seq_len), the only shape a mixer takes.

Two layouts:
- truncate + pad: one example per document, cut to L tokens and padded to L. Pad positions get
  attention_mask 0 and label -100. Right padding keeps every real token at the position it has
  in an unpadded input; left padding shifts them, so a model must be used the way it was trained.
- packing: documents are concatenated end to end, an eos after each, and cut into L-token blocks
  (the remainder of each batch of documents, under L tokens, is dropped). No padding, no waste.

Every example also records num_bytes, the UTF-8 bytes of the text its real tokens cover, so that
evaluation can report bits per byte, a measure that does not depend on the tokenizer.
"""

from __future__ import annotations

import datasets
import numpy as np
from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100  # label of positions that carry no loss (transformers' convention)


def token_bytes(text: str, offsets: list[tuple[int, int]]) -> np.ndarray:
    """UTF-8 bytes of `text` each token accounts for; they sum to the bytes up to the last token.

    A token covers the characters from the previous token's end to its own end, so spaces the
    tokenizer folds into a neighbour are counted once, and two byte-level tokens sharing one
    multi-byte character give it to the first.
    """
    ends = np.maximum.accumulate(np.fromiter((end for _, end in offsets), dtype=np.int64, count=len(offsets)))
    if not text.isascii():
        code_points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        widths = 1 + (code_points >= 0x80) + (code_points >= 0x800) + (code_points >= 0x10000)
        ends = np.concatenate([[0], np.cumsum(widths)])[ends]  # character offset -> byte offset
    return np.diff(ends, prepend=0)


def _encode(texts: list[str], tokenizer: PreTrainedTokenizerBase, add_bos: bool, add_eos: bool):
    """Token ids and per-token byte counts of each document, with bos/eos (0 bytes) as asked."""
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False)
    for text, ids, offsets in zip(texts, encoded["input_ids"], encoded["offset_mapping"]):
        nbytes = token_bytes(text, offsets).tolist()
        if add_bos:
            ids, nbytes = [tokenizer.bos_token_id, *ids], [0, *nbytes]
        if add_eos:
            ids, nbytes = [*ids, tokenizer.eos_token_id], [*nbytes, 0]
        yield ids, nbytes


def example_features(seq_len: int) -> datasets.Features:
    """Arrow schema of prepared examples: fixed-size lists of L token ids (no type guessing)."""
    row = datasets.List(datasets.Value("int64"), length=seq_len)
    return datasets.Features({"input_ids": row, "attention_mask": row, "labels": row, "num_bytes": datasets.Value("int64")})


def pad_examples(batch: dict, tokenizer: PreTrainedTokenizerBase, seq_len: int, padding_side: str, add_bos: bool, add_eos: bool) -> dict:
    """One example per document: truncated to seq_len tokens, padded to exactly seq_len."""
    rows = len(batch["text"])
    input_ids = np.full((rows, seq_len), tokenizer.pad_token_id, dtype=np.int64)
    labels = np.full((rows, seq_len), IGNORE_INDEX, dtype=np.int64)
    attention_mask = np.zeros((rows, seq_len), dtype=np.int64)
    num_bytes = np.zeros(rows, dtype=np.int64)
    for row, (ids, nbytes) in enumerate(_encode(batch["text"], tokenizer, add_bos, add_eos)):
        real = min(len(ids), seq_len)
        cols = slice(0, real) if padding_side == "right" else slice(seq_len - real, seq_len)
        input_ids[row, cols] = labels[row, cols] = ids[:real]
        attention_mask[row, cols] = 1
        num_bytes[row] = sum(nbytes[:real])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels, "num_bytes": num_bytes}


def pack_examples(batch: dict, tokenizer: PreTrainedTokenizerBase, seq_len: int, add_bos: bool) -> dict:
    """Concatenate the batch's documents (eos after each) and cut the stream into seq_len blocks."""
    stream, stream_bytes = [], []
    for ids, nbytes in _encode(batch["text"], tokenizer, add_bos, add_eos=True):
        stream.extend(ids)
        stream_bytes.extend(nbytes)
    blocks = len(stream) // seq_len
    input_ids = np.asarray(stream[: blocks * seq_len], dtype=np.int64).reshape(blocks, seq_len)
    num_bytes = np.asarray(stream_bytes[: blocks * seq_len], dtype=np.int64).reshape(blocks, seq_len).sum(axis=1)
    return {"input_ids": input_ids, "attention_mask": np.ones_like(input_ids), "labels": input_ids.copy(), "num_bytes": num_bytes}
