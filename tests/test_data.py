"""Data pipeline: corpora, tokenizers, fixed-length examples, the cache and `masked-mixers prepare`."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sentencepiece
import yaml
from conftest import SHARED, TRAIN, VALID
from transformers import AutoTokenizer

from masked_mixers.cli import main
from masked_mixers.core.errors import UserError
from masked_mixers.data import (
    IGNORE_INDEX,
    load_corpus,
    load_tokenizer,
    prepare_data,
    train_tokenizer,
    unigram_baseline,
)
from masked_mixers.data import prepare as prepare_module
from masked_mixers.data import shards as shards_module
from masked_mixers.data.examples import token_bytes
from masked_mixers.runs.config import DataConfig, ModelSpec
from masked_mixers.runs.factory import build_model

SP_MODEL = SHARED / "tokenizers" / "tinystories-sp4096.model"
MIXED_TEXT = "café naïve 日本語 🙂 once upon a time"

DOCS = ["The cat sat.", "A much longer document about dogs that runs on " * 6, "Émile went to Zürich."]


pytestmark = pytest.mark.usefixtures("datasets_cache")


def write_jsonl(path: Path, texts: list[str], field: str = "text") -> Path:
    path.write_text("".join(json.dumps({field: t, "id": i}) + "\n" for i, t in enumerate(texts)), encoding="utf-8")
    return path


def config(tmp_path: Path, **overrides) -> DataConfig:
    defaults = dict(source=str(TRAIN), max_documents=300, vocab_size=512, cache_dir=str(tmp_path / "cache"))
    return DataConfig(**{**defaults, **overrides})


def prepared_dirs(cache_dir: Path) -> list[Path]:
    root = cache_dir / "prepared"
    return sorted(root.iterdir()) if root.is_dir() else []


# --- corpora -----------------------------------------------------------------------------------


def test_jsonl_with_custom_field_drops_empty_documents(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", ["first story", "  ", "Second Story"], field="body")
    corpus = load_corpus(str(path), text_field="body")
    assert corpus.column_names == ["text"]
    assert corpus["text"] == ["first story", "Second Story"]


def test_json_array_and_several_files_in_order(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([{"text": "one"}, {"text": "two"}]), encoding="utf-8")
    b = write_jsonl(tmp_path / "b.jsonl", ["three"])
    (tmp_path / "empty.txt").write_bytes(b"")
    assert load_corpus([str(tmp_path / "a.json"), str(tmp_path / "empty.txt"), str(b)])["text"] == [
        "one",
        "two",
        "three",
    ]


def test_parquet(tmp_path):
    pq.write_table(pa.table({"content": ["alpha", "beta"], "n": [1, 2]}), tmp_path / "c.parquet")
    assert load_corpus(str(tmp_path / "c.parquet"), text_field="content")["text"] == ["alpha", "beta"]


def test_txt_split_on_end_of_text_markers_keeps_blank_lines_inside(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text(
        "Para one.\n\nPara two.\n<|endoftext|>\nSecond doc.<|endoftext|>Third\ndoc\n<|endoftext|>\n", encoding="utf-8"
    )
    assert load_corpus(str(path))["text"] == ["Para one.\n\nPara two.", "Second doc.", "Third\ndoc"]


def test_txt_without_markers_splits_on_blank_lines(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("First:\nline a\n\n\nSecond:\nline b\n   \nThird\n", encoding="utf-8")
    assert load_corpus(str(path))["text"] == ["First:\nline a", "Second:\nline b", "Third"]


def test_txt_real_file_and_max_documents():
    corpus = load_corpus(str(SHARED / "text" / "tinyshakespeare.txt"), max_documents=5)
    assert len(corpus) == 5
    assert corpus[0]["text"].startswith("First Citizen:")


def test_lowercase_and_max_documents(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", ["Hello World", "ÉCOLE", "Third"])
    assert load_corpus(str(path), lowercase=True, max_documents=2)["text"] == ["hello world", "école"]


def test_real_tinystories_slice():
    corpus = load_corpus(str(TRAIN), max_documents=200)
    assert len(corpus) == 200 and all(corpus["text"])


# --- bad input: one clear error naming the file, nothing left in the cache ----------------------


def _bad_sources(tmp_path: Path) -> dict[str, tuple[str, dict]]:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "blank.txt").write_text("\n  \n<|endoftext|>\n", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    (tmp_path / "latin1.jsonl").write_bytes(b'{"text": "caf\xe9"}\n')
    write_jsonl(tmp_path / "nofield.jsonl", ["x"], field="body")
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "nofield.parquet")
    (tmp_path / "numbers.jsonl").write_text('{"text": 1}\n{"text": 2}\n', encoding="utf-8")
    (tmp_path / "corpus.csv").write_text("text\nhello\n", encoding="utf-8")
    (tmp_path / "broken.parquet").write_bytes(b"not a parquet file")
    return {
        "missing": (str(tmp_path / "missing.jsonl"), {}),
        "empty": (str(tmp_path / "empty.jsonl"), {}),
        "no documents": (str(tmp_path / "blank.txt"), {}),
        "undecodable txt": (str(tmp_path / "latin1.txt"), {}),
        "undecodable jsonl": (str(tmp_path / "latin1.jsonl"), {}),
        "missing field": (str(tmp_path / "nofield.jsonl"), {}),
        "missing parquet column": (str(tmp_path / "nofield.parquet"), {}),
        "field not text": (str(tmp_path / "numbers.jsonl"), {}),
        "unsupported extension": (str(tmp_path / "corpus.csv"), {}),
        "corrupt parquet": (str(tmp_path / "broken.parquet"), {}),
        "bad eval source": (str(TRAIN), {"eval_source": str(tmp_path / "latin1.jsonl")}),
    }


BAD_CASES = [
    "missing",
    "empty",
    "no documents",
    "undecodable txt",
    "undecodable jsonl",
    "missing field",
    "missing parquet column",
    "field not text",
    "unsupported extension",
    "corrupt parquet",
    "bad eval source",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_corpus_is_one_user_error_naming_the_file(tmp_path, case):
    source, extra = _bad_sources(tmp_path)[case]
    data = config(tmp_path, source=source, **extra)
    with pytest.raises(UserError) as err:
        prepare_data(data, seq_len=32, progress=False)
    message = str(err.value)
    named = Path(extra.get("eval_source", source)).name
    assert named in message and "\n" not in message
    assert not (tmp_path / "cache").exists()


def test_missing_tokenizer_file(tmp_path):
    with pytest.raises(UserError, match="nope.model"):
        prepare_data(config(tmp_path, tokenizer=str(tmp_path / "nope.model")), seq_len=32, progress=False)
    assert not (tmp_path / "cache").exists()


def test_corrupt_sentencepiece_model(tmp_path):
    (tmp_path / "junk.model").write_bytes(b"\x00garbage")
    with pytest.raises(UserError, match="junk.model"):
        load_tokenizer(str(tmp_path / "junk.model"))


def test_bad_layout_options(tmp_path):
    with pytest.raises(UserError, match="data.padding_side"):
        prepare_data(config(tmp_path, padding_side="middle"), seq_len=32)
    with pytest.raises(UserError, match="data.eval_fraction"):
        prepare_data(config(tmp_path, eval_fraction=0.0), seq_len=32)


# --- tokenizers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bpe():
    return train_tokenizer(load_corpus(str(TRAIN), max_documents=300), vocab_size=512)


def test_trained_bpe_has_size_and_special_tokens(bpe):
    assert len(bpe) == 512
    assert bpe.eos_token == bpe.bos_token == "<|endoftext|>"
    assert bpe.pad_token is not None and bpe.pad_token_id != bpe.eos_token_id
    ids = bpe(MIXED_TEXT, add_special_tokens=False)["input_ids"]
    assert bpe.decode(ids) == MIXED_TEXT  # byte level: nothing is unknown, decoding is lossless


def test_tokenizer_saves_and_reloads_with_auto_tokenizer(bpe, tmp_path):
    bpe.save_pretrained(tmp_path / "tok")
    again = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert again(MIXED_TEXT)["input_ids"] == bpe(MIXED_TEXT)["input_ids"]
    assert (again.eos_token, again.pad_token) == (bpe.eos_token, bpe.pad_token)
    assert load_tokenizer(str(tmp_path / "tok"))(MIXED_TEXT)["input_ids"] == bpe(MIXED_TEXT)["input_ids"]


def test_bare_tokenizer_json_gets_its_special_tokens(bpe, tmp_path):
    bpe.backend_tokenizer.save(str(tmp_path / "tokenizer.json"))
    tok = load_tokenizer(str(tmp_path / "tokenizer.json"))
    assert (tok.eos_token, tok.pad_token, len(tok)) == ("<|endoftext|>", "<|pad|>", 512)


def test_sentencepiece_model_matches_sentencepiece_and_round_trips(tmp_path):
    tok = load_tokenizer(str(SP_MODEL))
    reference = sentencepiece.SentencePieceProcessor(model_file=str(SP_MODEL))
    text = "once upon a time, lily saw a big dog. " + MIXED_TEXT
    assert tok(text, add_special_tokens=False)["input_ids"] == reference.encode(text)
    assert len(tok) == 4096 and tok.eos_token_id == 2 and tok.pad_token is not None
    tok.save_pretrained(tmp_path / "sp")
    again = AutoTokenizer.from_pretrained(tmp_path / "sp")
    assert again(text)["input_ids"] == tok(text)["input_ids"] and again.pad_token == tok.pad_token


@pytest.mark.parametrize("which", ["bpe", "sentencepiece"])
def test_token_bytes_cover_the_utf8_text_exactly(bpe, which):
    tok = bpe if which == "bpe" else load_tokenizer(str(SP_MODEL))
    encoded = tok(MIXED_TEXT, add_special_tokens=False, return_offsets_mapping=True)
    counts = token_bytes(MIXED_TEXT, encoded["offset_mapping"])
    assert len(counts) == len(encoded["input_ids"]) and (counts >= 0).all()
    assert counts.sum() == len(MIXED_TEXT.encode("utf-8"))


# --- fixed-length examples --------------------------------------------------------------------


def _fixture_data(tmp_path: Path, **overrides) -> DataConfig:
    """Three known documents as train (in order) and as eval, so rows map to documents."""
    path = write_jsonl(tmp_path / "docs.jsonl", DOCS)
    return config(
        tmp_path, source=str(path), eval_source=str(path), max_documents=None, tokenizer=str(SP_MODEL), **overrides
    )


def _rows(dataset):
    """Every example as {column: list} (rows of a compact store are expanded when read)."""
    return [{k: np.asarray(v).tolist() for k, v in dataset[i].items()} for i in range(len(dataset))]


def _ids(dataset) -> list[list[int]]:
    return np.asarray(dataset[:]["input_ids"]).tolist()


@pytest.mark.parametrize("side", ["right", "left"])
def test_padding_shapes_masks_and_labels(tmp_path, side):
    seq_len = 24
    prepared = prepare_data(_fixture_data(tmp_path, padding_side=side), seq_len, progress=False)
    tok = prepared.tokenizer
    assert prepared.train.column_names == ["input_ids", "num_bytes"]  # stored: real ids only
    assert set(prepared.train[:2]) == {"input_ids", "attention_mask", "labels", "num_bytes"}  # read: full examples
    for doc, row in zip(DOCS, _rows(prepared.train)):
        ids, mask, labels = (np.array(row[k]) for k in ("input_ids", "attention_mask", "labels"))
        assert ids.shape == mask.shape == labels.shape == (seq_len,)
        real = mask.sum()
        expected_mask = np.r_[np.ones(real), np.zeros(seq_len - real)]
        assert (mask == (expected_mask if side == "right" else expected_mask[::-1])).all()
        assert (labels[mask == 0] == IGNORE_INDEX).all() and (labels[mask == 1] == ids[mask == 1]).all()
        assert (ids[mask == 0] == tok.pad_token_id).all()
        doc_ids = tok(doc, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert ids[mask == 1].tolist() == doc_ids[:seq_len]
        if len(doc_ids) <= seq_len:  # whole document: its bytes are all covered
            assert row["num_bytes"] == len(doc.encode("utf-8"))
        else:
            assert 0 < row["num_bytes"] < len(doc.encode("utf-8"))


def test_packing_concatenates_documents_with_eos(tmp_path):
    seq_len = 16
    prepared = prepare_data(_fixture_data(tmp_path, packing=True), seq_len, progress=False)
    tok = prepared.tokenizer
    stream = [t for doc in DOCS for t in tok(doc, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]]
    rows = _rows(prepared.train)
    assert len(rows) == len(stream) // seq_len
    assert [t for row in rows for t in row["input_ids"]] == stream[: len(rows) * seq_len]
    for row in rows:
        assert row["attention_mask"] == [1] * seq_len and row["labels"] == row["input_ids"]
    total_bytes = sum(len(d.encode("utf-8")) for d in DOCS)
    assert 0 < sum(row["num_bytes"] for row in rows) <= total_bytes


def test_add_bos_and_no_eos(tmp_path):
    prepared = prepare_data(_fixture_data(tmp_path, add_bos=True, add_eos=False), 64, progress=False)
    tok = prepared.tokenizer
    row = prepared.train[0]
    real = [t for t, m in zip(row["input_ids"], row["attention_mask"]) if m]
    assert real == [tok.bos_token_id] + tok(DOCS[0], add_special_tokens=False)["input_ids"]


def test_eval_fraction_split_is_deterministic_and_disjoint(tmp_path):
    first = prepare_data(config(tmp_path, eval_fraction=0.1), 64, progress=False)
    assert first.stats["eval_documents"] == 30 and first.stats["train_documents"] == 270
    second = prepare_data(config(tmp_path / "other", eval_fraction=0.1), 64, progress=False)
    assert _ids(second.eval) == _ids(first.eval)
    train_rows = {tuple(r) for r in _ids(first.train)}
    assert not any(tuple(r) in train_rows for r in _ids(first.eval))


# --- cache ------------------------------------------------------------------------------------


def test_cache_is_reused_without_retokenizing_and_rebuilt_on_change(tmp_path, monkeypatch):
    source = write_jsonl(
        tmp_path / "c.jsonl", [json.loads(line)["text"] for line in TRAIN.read_text().splitlines()[:200]]
    )
    data = config(tmp_path, source=str(source), max_documents=None)
    first = prepare_data(data, 64, progress=False)
    assert not first.reused and first.cache_path.is_dir()
    manifest = json.loads((first.cache_path / "prepared.json").read_text())
    assert manifest["inputs"]["seq_len"] == 64 and manifest["inputs"]["corpus"]["files"][0]["path"] == str(source)
    assert manifest["stats"] == first.stats

    def no_tokenizing(*args, **kwargs):
        raise AssertionError("re-tokenized although nothing changed")

    with monkeypatch.context() as patch:
        patch.setattr(prepare_module, "_build", no_tokenizing)
        patch.setattr(prepare_module, "labelled_documents", no_tokenizing)
        again = prepare_data(data, 64, progress=False)
    assert again.reused and again.cache_path == first.cache_path
    assert _ids(again.train) == _ids(first.train)

    changes = [
        dataclasses.replace(data, lowercase=True),
        dataclasses.replace(data, packing=True),
        dataclasses.replace(data, padding_side="left"),
        dataclasses.replace(data, vocab_size=600),
        dataclasses.replace(data, max_documents=100),
        dataclasses.replace(data, tokenizer=str(SP_MODEL)),
    ]
    paths = {first.cache_path, prepare_data(data, 32, progress=False).cache_path}
    for changed in changes:
        paths.add(prepare_data(changed, 64, progress=False).cache_path)
    assert len(paths) == 2 + len(changes)

    with source.open("a", encoding="utf-8") as handle:  # an edited corpus is a different corpus
        handle.write(json.dumps({"text": "one more story"}) + "\n")
    edited = prepare_data(data, 64, progress=False)
    assert not edited.reused and edited.cache_path not in paths
    assert edited.stats["train_documents"] + edited.stats["eval_documents"] == 201
    leftovers = [p.name for p in prepared_dirs(tmp_path / "cache") if p.name.startswith(".")]
    assert leftovers == []


def test_failed_build_publishes_nothing_and_resumes(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    data = config(tmp_path, shard_documents=100)
    with monkeypatch.context() as patch:
        patch.setattr(prepare_module, "unigram_baseline_from_counts", crash)
        with pytest.raises(RuntimeError):
            prepare_data(data, 64, progress=False)
    left = prepared_dirs(tmp_path / "cache")
    assert [p.name.endswith(".partial") for p in left] == [True]  # only the hidden, resumable work
    monkeypatch.setattr(shards_module, "_build_shard", crash)  # the 3 finished shards are not built again
    resumed = prepare_data(data, 64, progress=False)
    assert [p.name for p in prepared_dirs(tmp_path / "cache")] == [resumed.cache_path.name]
    assert resumed.stats["train_documents"] + resumed.stats["eval_documents"] == 300


def test_bad_input_discards_partial_work(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        "".join(json.dumps({"text": f"story {i}"}) + "\n" for i in range(50)) + "{broken\n", encoding="utf-8"
    )
    with pytest.raises(UserError, match="bad.jsonl"):
        prepare_data(config(tmp_path, source=str(bad), max_documents=None, shard_documents=10), 8, progress=False)
    assert prepared_dirs(tmp_path / "cache") == []


def test_tokenizer_larger_than_model_vocabulary_is_caught(tmp_path):
    prepared = prepare_data(config(tmp_path), 32, progress=False)
    spec = ModelSpec(vocab_size=256, hidden_size=16, num_hidden_layers=1, seq_len=32, num_heads=2)
    with pytest.raises(UserError, match="model.vocab_size"):
        build_model(spec, vocab_size=len(prepared.tokenizer))
    model, _ = build_model(dataclasses.replace(spec, vocab_size=None), vocab_size=len(prepared.tokenizer))
    assert model.config.vocab_size == 512


# --- unigram baseline -------------------------------------------------------------------------


def _labels(rows):
    return datasets.Dataset.from_dict({"labels": rows})


def test_unigram_baseline_by_hand():
    train = _labels([[1, 1, 2, IGNORE_INDEX]])  # counts: 0 -> 0, 1 -> 2, 2 -> 1
    held_out = _labels([[2, 1, 2, IGNORE_INDEX], [0, 1, IGNORE_INDEX, IGNORE_INDEX]])
    # predicted eval tokens: 1, 2 (first row), 1 (second row); add-one over 3 tokens: p = (c + 1) / 6
    expected = -(2 * math.log(3 / 6) + math.log(2 / 6)) / 3
    assert unigram_baseline(train, held_out) == pytest.approx(expected)
    assert unigram_baseline(train, held_out, vocab_size=10) == pytest.approx(
        -(2 * math.log(3 / 13) + math.log(2 / 13)) / 3
    )


def test_unigram_baseline_on_real_data_is_below_uniform(tmp_path):
    prepared = prepare_data(config(tmp_path, eval_source=str(VALID), max_eval_documents=100), 64, progress=False)
    baseline = prepared.stats["unigram_baseline"]
    assert baseline == pytest.approx(unigram_baseline(prepared.train, prepared.eval, len(prepared.tokenizer)))
    assert 3.0 < baseline < math.log(len(prepared.tokenizer))


# --- CLI --------------------------------------------------------------------------------------


def _run_config(tmp_path: Path, **data) -> str:
    path = tmp_path / "run.yaml"
    body = {
        "model": {"seq_len": 64, "hidden_size": 16, "num_hidden_layers": 1},
        "data": {
            "source": str(TRAIN),
            "max_documents": 200,
            "vocab_size": 512,
            "cache_dir": str(tmp_path / "cache"),
            **data,
        },
    }
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return str(path)


def test_cli_prepare_reports_cache_counts_and_baseline(tmp_path, capsys):
    cfg = _run_config(tmp_path)
    assert main(["prepare", cfg, "--no-progress", "--set", "data.packing=true"]) == 0
    out = capsys.readouterr().out
    assert "prepared: " + str(tmp_path / "cache") in out and "unigram baseline" in out and "512 tokens" in out
    assert main(["prepare", cfg, "--no-progress", "--set", "data.packing=true"]) == 0
    assert capsys.readouterr().out.startswith("reused: ")


def test_cli_missing_corpus_is_one_line_exit_2(tmp_path, capsys):
    missing = tmp_path / "nowhere.jsonl"
    assert main(["prepare", _run_config(tmp_path), "--source", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere.jsonl" in err
    assert not (tmp_path / "cache").exists()


def test_cli_tokenizer_too_large_for_model(tmp_path, capsys):
    assert main(["prepare", _run_config(tmp_path), "--no-progress", "--set", "model.vocab_size=300"]) == 2
    assert "model.vocab_size" in capsys.readouterr().err


def test_hub_dataset_errors_name_the_dataset(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'someone/stories' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(UserError, match="someone/stories"):
        load_corpus("someone/stories", split="train")


def test_num_proc_gives_the_same_padded_examples(tmp_path):
    serial = prepare_data(config(tmp_path, max_documents=200), 64, progress=False)
    parallel = prepare_data(config(tmp_path, max_documents=200, num_proc=2), 64, progress=False)
    assert parallel.reused  # the worker count does not change padded examples, so it is not in the key
    parallel = prepare_data(config(tmp_path / "p", max_documents=200, num_proc=2), 64, progress=False)
    assert not parallel.reused
    assert _ids(parallel.train) == _ids(serial.train)
    assert list(parallel.eval["num_bytes"]) == list(serial.eval["num_bytes"])
