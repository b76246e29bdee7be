"""Compact, streamed, sharded token storage (issue 17): what is stored, what is read back, resuming
after a kill, a token budget, streamed sources, old caches, and bounded memory."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SHARED, TRAIN
from transformers import default_data_collator

from masked_mixers.core.errors import UserError
from masked_mixers.data import (
    FORMAT_VERSION,
    IGNORE_INDEX,
    Layout,
    as_examples,
    cache_path,
    load_prepared,
    load_tokenizer,
    prepare_data,
    token_dtype,
    train_tokenizer,
)
from masked_mixers.data import shards as shards_module
from masked_mixers.data.examples import encode_documents, token_bytes
from masked_mixers.data.shards import ShardSpec, rows_table
from masked_mixers.data.stream import stream_texts
from masked_mixers.runs.config import DataConfig
from masked_mixers.training.evaluation import _batches

ROOT = Path(__file__).resolve().parents[1]
SP_MODEL = SHARED / "tokenizers" / "tinystories-sp4096.model"
TEXTS = [json.loads(line)["text"] for line in TRAIN.read_text(encoding="utf-8").splitlines()[:120]]


pytestmark = pytest.mark.usefixtures("datasets_cache")


def _jsonl(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def _data(tmp_path: Path, **overrides) -> DataConfig:
    """TEXTS as train and as eval (so stored rows map to documents in order), SentencePiece 4096."""
    path = _jsonl(tmp_path / "docs.jsonl", TEXTS)
    defaults = dict(
        source=str(path), eval_source=str(path), tokenizer=str(SP_MODEL), cache_dir=str(tmp_path / "cache"), num_proc=1
    )
    return DataConfig(**{**defaults, **overrides})


def _stored(dataset: datasets.Dataset) -> datasets.Dataset:
    """The rows as stored on disk, without the expanding transform."""
    return dataset.with_format(None)


# --- the previous layout (format 1), kept here as the reference the compact store must reproduce ---


def _previous_rows(texts, tokenizer, seq_len, packing, padding_side="right", add_bos=False, add_eos=True) -> dict:
    """Format 1's int64 input_ids / attention_mask / labels / num_bytes of one batch of documents."""
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    docs = []
    for text, ids, offsets in zip(texts, encoded["input_ids"], encoded["offset_mapping"]):
        nbytes = token_bytes(text, offsets).tolist()
        ids = (
            ([tokenizer.bos_token_id] if add_bos else [])
            + ids
            + ([tokenizer.eos_token_id] if add_eos or packing else [])
        )
        nbytes = ([0] if add_bos else []) + nbytes + ([0] if add_eos or packing else [])
        docs.append((ids, nbytes))
    if packing:
        stream = [t for ids, _ in docs for t in ids]
        stream_bytes = [b for _, nb in docs for b in nb]
        n = len(stream) // seq_len
        ids = np.asarray(stream[: n * seq_len], dtype=np.int64).reshape(n, seq_len)
        nbytes = np.asarray(stream_bytes[: n * seq_len]).reshape(n, seq_len).sum(1)
        return {"input_ids": ids, "attention_mask": np.ones_like(ids), "labels": ids.copy(), "num_bytes": nbytes}
    rows = {"input_ids": [], "attention_mask": [], "labels": [], "num_bytes": []}
    for ids, nbytes in docs:
        real = min(len(ids), seq_len)
        pad = [tokenizer.pad_token_id] * (seq_len - real)
        place = (
            (lambda real_part, fill: real_part + fill)
            if padding_side == "right"
            else (lambda real_part, fill: fill + real_part)
        )
        rows["input_ids"].append(place(ids[:real], pad))
        rows["attention_mask"].append(place([1] * real, [0] * len(pad)))
        rows["labels"].append(place(ids[:real], [IGNORE_INDEX] * len(pad)))
        rows["num_bytes"].append(sum(nbytes[:real]))
    return {k: np.asarray(v, dtype=np.int64) for k, v in rows.items()}


@pytest.mark.parametrize("packing,side", [(False, "right"), (False, "left"), (True, "right")])
def test_compact_batches_equal_the_previous_layout(tmp_path, packing, side):
    seq_len = 48
    prepared = prepare_data(_data(tmp_path, packing=packing, padding_side=side), seq_len, progress=False)
    previous = _previous_rows(TEXTS, prepared.tokenizer, seq_len, packing, side)
    assert len(prepared.train) == len(previous["input_ids"])
    everything = prepared.train[:]
    for key in ("input_ids", "attention_mask", "labels", "num_bytes"):
        np.testing.assert_array_equal(everything[key], previous[key])
    # the batches models see: evaluation's loader and the Trainer's collator over rows
    batch = next(iter(_batches(prepared.train, 8)))
    rows = default_data_collator(prepared.train.__getitems__(list(range(8))))
    for key in ("input_ids", "attention_mask", "labels"):
        np.testing.assert_array_equal(batch[key].numpy(), previous[key][:8])
        np.testing.assert_array_equal(rows[key].numpy(), previous[key][:8])
    assert batch["input_ids"].dtype == rows["labels"].dtype == __import__("torch").int64


# multi-byte UTF-8 (2, 3 and 4 bytes), a ligature and spaces the tokenizers fold or drop at the ends
MIXED = ["café naïve 日本語 🙂 ", "Émile went to Zürich — “quoted” ", "  ½ ü ß and ﬁ\u00a0 ", "\t🙂🙂 ok\n  "]
MIXED_TEXTS = [
    f"{MIXED[i % 4]}{t[:150]} {MIXED[(i + 1) % 4]}{t[150:300]}{MIXED[(i + 2) % 4]}" for i, t in enumerate(TEXTS[:50])
]


@pytest.mark.parametrize("num_proc", [1, 2])
@pytest.mark.parametrize("packing", [False, True])
@pytest.mark.parametrize("which", ["sentencepiece", "bpe"])
def test_num_bytes_equal_the_per_token_sums_on_multibyte_text(tmp_path, which, packing, num_proc):
    """num_bytes, read from a few offsets per example (EncodedDocument.prefix_bytes), equals the
    per-token token_bytes sums of the previous layout, in process and from worker processes."""
    path = _jsonl(tmp_path / "mixed.jsonl", MIXED_TEXTS)
    tokenizer = str(SP_MODEL) if which == "sentencepiece" else None  # None: a byte-level BPE is trained
    data = _data(
        tmp_path,
        source=str(path),
        eval_source=str(path),
        tokenizer=tokenizer,
        vocab_size=400,
        packing=packing,
        num_proc=num_proc,
    )
    seq_len = 40
    prepared = prepare_data(data, seq_len, progress=False)
    previous = _previous_rows(MIXED_TEXTS, prepared.tokenizer, seq_len, packing)
    stored = prepared.train[:]
    np.testing.assert_array_equal(stored["input_ids"], previous["input_ids"])
    np.testing.assert_array_equal(stored["num_bytes"], previous["num_bytes"])
    assert previous["num_bytes"].sum() > 0 and not all(t.isascii() for t in MIXED_TEXTS)


@pytest.mark.parametrize("which", ["sentencepiece", "bpe"])
def test_every_prefix_of_an_encoded_document_has_the_per_token_bytes(which):
    tok = load_tokenizer(str(SP_MODEL)) if which == "sentencepiece" else train_tokenizer(MIXED_TEXTS, 400)
    for add_bos in (False, True):
        docs = encode_documents(MIXED_TEXTS[:12], tok, add_bos=add_bos, add_eos=True)
        for text, doc, sent in zip(MIXED_TEXTS, docs, pickle.loads(pickle.dumps(docs))):
            encoding = tok.backend_tokenizer.encode(text, add_special_tokens=False)
            per_token = [0] * add_bos + token_bytes(text, encoding.offsets).tolist() + [0]
            assert len(per_token) == len(doc.ids) == len(sent.ids)
            for k in range(len(per_token) + 1):
                assert doc.prefix_bytes(k) == sent.prefix_bytes(k) == sum(per_token[:k]), (text, k)


def test_stored_tokens_are_the_tokenizers_own_output_in_uint16(tmp_path):
    seq_len = 64
    prepared = prepare_data(_data(tmp_path), seq_len, progress=False)
    tok = prepared.tokenizer
    assert prepared.train.features["input_ids"].feature.dtype == "uint16"
    own = [e.ids for e in tok.backend_tokenizer.encode_batch(TEXTS[:40], add_special_tokens=False)]
    stored = _stored(prepared.train).select(range(40))["input_ids"]
    assert [list(r) for r in stored] == [(ids + [tok.eos_token_id])[:seq_len] for ids in own]
    disk = prepared.stats["train_disk_bytes"] / prepared.stats["train_tokens"]
    assert disk < 2.5  # padded rows store their real tokens only (2 bytes) plus an offset and num_bytes


def test_packed_store_is_at_most_2_1_bytes_per_token(tmp_path):
    prepared = prepare_data(_data(tmp_path, packing=True), 128, progress=False)
    assert prepared.stats["train_disk_bytes"] / prepared.stats["train_tokens"] <= 2.1
    files = list((prepared.cache_path / "train").glob("*.arrow"))
    assert sum(f.stat().st_size for f in files) == prepared.stats["train_disk_bytes"]


def test_token_dtype_and_a_uint32_store_round_trip():
    assert (token_dtype(4096), token_dtype(65536), token_dtype(65537), token_dtype(128256)) == (
        "uint16",
        "uint16",
        "uint32",
        "uint32",
    )
    layout = Layout(seq_len=4, packed=False, padding_side="left", pad_token_id=7)
    spec = ShardSpec(layout, vocab_size=128256, add_bos=False, add_eos=True, shard_documents=10)
    rows = {"input_ids": [np.array([128000, 70000, 3]), np.array([65536])], "num_bytes": np.array([5, 2])}
    stored = datasets.Dataset(rows_table(rows, spec))
    assert stored.features["input_ids"].feature.dtype == "uint32"
    expanded = as_examples(stored, layout)[:]
    np.testing.assert_array_equal(expanded["input_ids"], [[7, 128000, 70000, 3], [7, 7, 7, 65536]])
    np.testing.assert_array_equal(expanded["labels"], [[-100, 128000, 70000, 3], [-100, -100, -100, 65536]])
    np.testing.assert_array_equal(expanded["attention_mask"], [[0, 1, 1, 1], [0, 0, 0, 1]])


# --- resuming, budget, streaming, tokenizer sample, old caches ---


KILLER = textwrap.dedent(
    """
    import json, os, signal, sys
    from masked_mixers.runs.config import DataConfig
    from masked_mixers.data import prepare_data, shards

    write = shards._write_table

    def write_then_die(table, path):  # killed mid-shard: shard 2's train file written, its record not
        write(table, path)
        if path.name == "000002.arrow":
            os.kill(os.getpid(), signal.SIGKILL)

    shards._write_table = write_then_die
    prepare_data(DataConfig(**json.loads(sys.argv[1])), int(sys.argv[2]), progress=False)
    """
)


def test_killed_prepare_resumes_without_redoing_shards_and_matches(tmp_path, monkeypatch):
    path = _jsonl(tmp_path / "docs.jsonl", TEXTS)
    data = DataConfig(
        source=str(path),
        eval_fraction=0.1,
        vocab_size=512,
        shard_documents=25,
        packing=True,
        cache_dir=str(tmp_path / "killed"),
        num_proc=1,
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_DATASETS_CACHE": str(tmp_path / "hf")}
    done = subprocess.run(
        [sys.executable, "-c", KILLER, json.dumps(dataclasses.asdict(data)), "32"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == -9, done.stderr
    assert not cache_path(data, 32).exists()

    built = []
    build = shards_module._build_shard
    monkeypatch.setattr(
        shards_module, "_build_shard", lambda index, *a, **k: built.append(index) or build(index, *a, **k)
    )
    resumed = prepare_data(dataclasses.replace(data, num_proc=2), 32, progress=False)
    assert built == [2, 3, 4]  # 120 documents in shards of 25: shards 0 and 1 were finished before the kill
    monkeypatch.undo()
    whole = prepare_data(dataclasses.replace(data, cache_dir=str(tmp_path / "whole")), 32, progress=False)
    assert resumed.stats == whole.stats
    for split in ("train", "eval"):
        a, b = getattr(resumed, split)[:], getattr(whole, split)[:]
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert resumed.tokenizer.get_vocab() == whole.tokenizer.get_vocab()


def test_max_tokens_caps_the_training_split_and_stops_reading(tmp_path):
    path = _jsonl(tmp_path / "docs.jsonl", TEXTS)
    data = DataConfig(
        source=str(path),
        eval_fraction=0.1,
        tokenizer=str(SP_MODEL),
        shard_documents=10,
        packing=True,
        max_tokens=2000,
        cache_dir=str(tmp_path / "cache"),
        num_proc=1,
    )
    prepared = prepare_data(data, 32, progress=False)
    assert (
        2000 - 32 < prepared.stats["train_tokens"] <= 2000
        and len(prepared.train) * 32 == prepared.stats["train_tokens"]
    )
    assert prepared.stats["train_documents"] + prepared.stats["eval_documents"] < len(TEXTS)


def test_eval_is_every_stride_th_document(tmp_path):
    path = _jsonl(tmp_path / "docs.jsonl", TEXTS)
    data = DataConfig(
        source=str(path), eval_fraction=0.1, tokenizer=str(SP_MODEL), cache_dir=str(tmp_path / "cache"), num_proc=1
    )
    prepared = prepare_data(data, 16, progress=False)
    assert prepared.stats["eval_documents"] == 12 and prepared.stats["train_documents"] == 108
    first_eval = prepared.tokenizer(TEXTS[10], add_special_tokens=False)["input_ids"][:16]
    assert list(_stored(prepared.eval)[1]["input_ids"]) == first_eval


def test_parquet_and_hub_ids_stream_through_load_dataset(tmp_path, monkeypatch):
    parquet = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"text": TEXTS, "id": list(range(len(TEXTS)))}), parquet)
    calls = []
    load = datasets.load_dataset

    def spy(path, name=None, **kwargs):
        calls.append((path, name, kwargs.get("streaming")))
        if path == "someone/fineweb":  # a hub id: served from the local parquet file, like the hub's own parquet shards
            return load("parquet", data_files=[str(parquet)], split="train", streaming=True)
        return load(path, name, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", spy)
    assert list(stream_texts(str(parquet))) == TEXTS
    assert list(stream_texts("someone/fineweb", config_name="sample-10BT")) == TEXTS
    assert calls == [("parquet", None, True), ("someone/fineweb", "sample-10BT", True)]
    hub = DataConfig(
        source="someone/fineweb",
        config_name="sample-10BT",
        eval_fraction=0.1,
        tokenizer=str(SP_MODEL),
        cache_dir=str(tmp_path / "cache"),
        num_proc=1,
    )
    local = dataclasses.replace(hub, source=str(_jsonl(tmp_path / "docs.jsonl", TEXTS)), config_name=None)
    a, b = prepare_data(hub, 32, progress=False), prepare_data(local, 32, progress=False)
    np.testing.assert_array_equal(a.train[:]["input_ids"], b.train[:]["input_ids"])
    assert "sample-10BT" in json.dumps(json.loads((a.cache_path / "prepared.json").read_text())["inputs"])


def test_tokenizer_trains_on_the_sample_only(tmp_path):
    path = _jsonl(tmp_path / "docs.jsonl", TEXTS)
    data = DataConfig(
        source=str(path),
        eval_source=str(path),
        vocab_size=400,
        tokenizer_sample_documents=30,
        cache_dir=str(tmp_path / "cache"),
        num_proc=1,
    )
    prepared = prepare_data(data, 32, progress=False)
    assert prepared.tokenizer.get_vocab() == train_tokenizer(TEXTS[:30], 400).get_vocab()
    assert prepared.stats["train_documents"] == len(TEXTS)


def test_old_format_cache_is_rebuilt_not_misread(tmp_path):
    data = _data(tmp_path)
    old = cache_path(data, 32)
    (old / "train").mkdir(parents=True)
    (old / "prepared.json").write_text(json.dumps({"inputs": {"format_version": 1}, "stats": {}}))
    with pytest.raises(UserError, match=f"format 1, this version reads {FORMAT_VERSION}"):
        load_prepared(old)
    prepared = prepare_data(data, 32, progress=False)
    assert not prepared.reused and prepared.cache_path == old and len(prepared.train) == len(TEXTS)
    assert json.loads((old / "prepared.json").read_text())["format_version"] == FORMAT_VERSION


# --- bounded memory ---

MEMORY = textwrap.dedent(
    """
    import json, resource, sys
    from masked_mixers.runs.config import DataConfig
    from masked_mixers.data import prepare_data

    big, small = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    headroom, corpus_bytes = int(sys.argv[3]), int(sys.argv[4])
    prepare_data(DataConfig(**small), 16, progress=False)  # warm up: every module the pipeline imports lazily is loaded
    vm = int(next(line for line in open("/proc/self/status") if line.startswith("VmSize")).split()[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + headroom, vm + headroom))
    prepared = prepare_data(DataConfig(**big), 16, progress=False)
    try:
        bytearray(corpus_bytes)
        print("the corpus would fit under the limit: the test proves nothing")
    except MemoryError:
        print(json.dumps(prepared.stats))
    """
)


def _write_big_corpus(path: Path, megabytes: int) -> int:
    """JSON Lines of ~4 KB documents of TinyStories words, written in pieces."""
    words = np.array(sorted({w for t in TEXTS for w in t.split()}))
    rng = np.random.default_rng(0)
    with path.open("w", encoding="utf-8") as handle:
        while handle.tell() < megabytes << 20:
            docs = rng.choice(words, size=(256, 700))
            handle.write("".join(json.dumps({"text": " ".join(doc)}) + "\n" for doc in docs))
    return path.stat().st_size


def test_a_corpus_larger_than_the_memory_limit_prepares(tmp_path):
    headroom = 16 << 20  # address space the preparation may add to what the warmed-up process holds
    corpus_bytes = _write_big_corpus(tmp_path / "big.jsonl", 24)
    assert corpus_bytes > headroom
    common = dict(tokenizer=str(SP_MODEL), eval_fraction=0.01, shard_documents=16, num_proc=1)
    big = dict(source=str(tmp_path / "big.jsonl"), cache_dir=str(tmp_path / "cache"), **common)
    small = dict(source=str(_jsonl(tmp_path / "small.jsonl", TEXTS)), cache_dir=str(tmp_path / "warm"), **common)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_DATASETS_CACHE": str(tmp_path / "hf"),
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
    }
    args = [json.dumps(big), json.dumps(small), str(headroom), str(corpus_bytes)]
    done = subprocess.run([sys.executable, "-c", MEMORY, *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    assert stats["train_documents"] + stats["eval_documents"] == sum(1 for _ in (tmp_path / "big.jsonl").open())
