"""Tokenize a document stream shard by shard into compact Arrow files, resumably.

The stream is cut into shards of `shard_documents` documents. Each shard is encoded over
`num_proc` worker processes (order kept), laid out (examples.py) and written as one Arrow file
per split, then a small JSON record of its counts; that record, renamed into place last, is what
marks a shard finished. A rerun after a kill skips finished shards (reading past their
documents, not tokenizing them) and redoes at most the one it was in. Memory holds one shard.

Packing works within a shard (a shard's remainder under L tokens is dropped), so the result does
not depend on the worker count. `max_tokens` stops the stream once the training split holds that
many real tokens (the last shard is cut at an example boundary).
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..core.files import atomic_path, atomic_write_json
from .examples import Layout, encode_documents, pack_rows, pad_rows, token_dtype, utf8_length

SPLITS = ("train", "eval")


@dataclass(frozen=True)
class ShardSpec:
    """What every shard is made with (all of it is in the cache fingerprint)."""

    layout: Layout
    vocab_size: int
    add_bos: bool
    add_eos: bool
    shard_documents: int
    max_tokens: int | None = None


def default_workers() -> int:
    """All cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


_WORKER_TOKENIZER = None


def _init_worker(tokenizer) -> None:
    global _WORKER_TOKENIZER
    _WORKER_TOKENIZER = tokenizer


def _encode_chunk(args: tuple[list[str], bool, bool, int | None]):
    texts, add_bos, add_eos, keep = args
    return encode_documents(texts, _WORKER_TOKENIZER, add_bos, add_eos, keep)


class Encoder:
    """encode_documents over a pool of processes (or in this one for num_proc 1), order kept."""

    def __init__(self, tokenizer, num_proc: int):
        self.tokenizer, self.num_proc, self.pool = tokenizer, max(1, num_proc), None

    def __enter__(self) -> Encoder:
        return self

    def _start(self) -> None:
        if self.pool is None and self.num_proc > 1:
            # fork: workers inherit the tokenizer and modules instead of re-importing them; each
            # runs the tokenizers library single-threaded (told up front, so it does not warn)
            before = os.environ.get("TOKENIZERS_PARALLELISM")
            os.environ["TOKENIZERS_PARALLELISM"] = "false"
            try:
                self.pool = multiprocessing.get_context("fork").Pool(self.num_proc, _init_worker, (self.tokenizer,))
            finally:
                os.environ.pop("TOKENIZERS_PARALLELISM") if before is None else os.environ.update(
                    TOKENIZERS_PARALLELISM=before
                )

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()

    def __call__(self, texts: list[str], add_bos: bool, add_eos: bool, keep: int | None = None):
        """encode_documents of `texts` (`keep`: the ids used per document, None: all)."""
        if len(texts) > self.num_proc:  # started at the first shard worth spreading, not before
            self._start()
        if self.pool is None:
            return encode_documents(texts, self.tokenizer, add_bos, add_eos, keep)
        size = max(1, -(-len(texts) // (self.num_proc * 4)))  # a few chunks per worker evens out long documents
        chunks = [(texts[i : i + size], add_bos, add_eos, keep) for i in range(0, len(texts), size)]
        return [doc for chunk in self.pool.map(_encode_chunk, chunks) for doc in chunk]


def shard_rows(texts: list[str], encoder: Callable, spec: ShardSpec) -> dict:
    """Stored rows (examples.py layout) of one shard's documents."""
    packed = spec.layout.packed
    encoded = encoder(texts, spec.add_bos, True if packed else spec.add_eos, None if packed else spec.layout.seq_len)
    return (pack_rows if spec.layout.packed else pad_rows)(encoded, spec.layout.seq_len)


def row_tokens(rows: dict) -> np.ndarray:
    return np.asarray([len(r) for r in rows["input_ids"]], dtype=np.int64)


def _cap(rows: dict, budget: int) -> dict:
    """The leading rows whose real tokens fit in `budget`."""
    keep = int(np.searchsorted(np.cumsum(row_tokens(rows)), budget, side="right"))
    return {key: value[:keep] for key, value in rows.items()}


def rows_table(rows: dict, spec: ShardSpec) -> pa.Table:
    """Stored rows as an Arrow table of the compact schema (ids as uint16/uint32)."""
    dtype = np.dtype(token_dtype(spec.vocab_size))
    schema = spec.layout.features(spec.vocab_size).arrow_schema
    if spec.layout.packed:
        flat = np.asarray(rows["input_ids"]).reshape(-1).astype(dtype)
        ids = pa.FixedSizeListArray.from_arrays(pa.array(flat), spec.layout.seq_len)
    else:
        lengths = row_tokens(rows)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        flat = np.concatenate(rows["input_ids"]).astype(dtype) if len(lengths) else np.zeros(0, dtype)
        ids = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat))
    nbytes = pa.array(np.asarray(rows["num_bytes"], dtype=np.uint32))
    return pa.Table.from_arrays([ids, nbytes], schema=schema)


def _write_table(table: pa.Table, path: Path) -> None:
    """An Arrow stream file (what datasets memory-maps), written beside and renamed into place."""
    with atomic_path(path) as tmp, pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)


def shard_name(index: int) -> str:
    return f"{index:06d}"


@dataclass
class ShardRecord:
    """Counts of one finished shard, per split: documents, examples, tokens, bytes, text bytes."""

    index: int
    counts: dict
    capped: bool = False  # max_tokens cut this shard's training rows: the budget is spent

    @staticmethod
    def read(path: Path) -> ShardRecord:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ShardRecord(index=data["index"], counts=data["counts"], capped=data.get("capped", False))


def _shards(documents: Iterator[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    while shard := list(islice(documents, size)):
        yield shard


def _build_shard(
    index: int, docs: list[tuple[str, str]], encoder, spec: ShardSpec, out: Path, budget: int | None
) -> ShardRecord:
    counts, capped = {}, False
    for split in SPLITS:
        texts = [text for label, text in docs if label == split]
        rows = shard_rows(texts, encoder, spec) if texts else {"input_ids": [], "num_bytes": []}
        if split == "train" and budget is not None:
            produced = len(rows["input_ids"])
            rows = _cap(rows, budget)
            capped = len(rows["input_ids"]) < produced
        n = len(rows["input_ids"])
        if n:
            _write_table(rows_table(rows, spec), out / split / f"{shard_name(index)}.arrow")
        counts[split] = {
            "documents": len(texts),
            "examples": n,
            "tokens": int(row_tokens(rows).sum()) if n else 0,
            "bytes": int(np.sum(rows["num_bytes"])) if n else 0,
            "text_bytes": sum(map(utf8_length, texts)),
        }
    record = ShardRecord(index, counts, capped)
    atomic_write_json(
        out / "shards" / f"{shard_name(index)}.json", {"index": index, "counts": counts, "capped": capped}
    )
    return record


def build_shards(
    documents: Iterator[tuple[str, str]], encoder, spec: ShardSpec, out: Path, progress=None
) -> list[ShardRecord]:
    """Write every shard of `documents` under out/{train,eval,shards}, reusing finished ones.

    Returns the records of all shards, in order. `progress(record, reused)` is told of each.
    """
    for sub in (*SPLITS, "shards"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    records, train_tokens = [], 0
    for index, docs in enumerate(_shards(documents, spec.shard_documents)):
        marker = out / "shards" / f"{shard_name(index)}.json"
        budget = None if spec.max_tokens is None else spec.max_tokens - train_tokens
        reused = marker.is_file()
        record = ShardRecord.read(marker) if reused else _build_shard(index, docs, encoder, spec, out, budget)
        records.append(record)
        train_tokens += record.counts["train"]["tokens"]
        if progress is not None:
            progress(record, reused)
        if record.capped or (spec.max_tokens is not None and train_tokens >= spec.max_tokens):
            break
    return records


def shard_files(out: Path, split: str, records: list[ShardRecord]) -> list[str]:
    """Relative paths of a split's Arrow files, in shard order (shards with no rows have none)."""
    return [f"{split}/{shard_name(r.index)}.arrow" for r in records if r.counts[split]["examples"]]
