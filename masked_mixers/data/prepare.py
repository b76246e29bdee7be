"""prepare_data: a DataConfig and L -> cached, memory-mapped train/eval examples and a tokenizer.

The cache directory is named by a fingerprint of every input that shapes the result (corpus
files by path, size and modification time or hub id and split; text options; tokenizer; L and
layout; FORMAT_VERSION). An unchanged config reuses it without reading the corpus; any change
builds a new one. Building happens in a temporary directory renamed into place at the end, and
prepared.json in it records the fingerprint inputs and the statistics of the result.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import datasets
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from ..config import DataConfig
from ..errors import UserError, reason
from .cache import fingerprint, publish, slug
from .corpus import corpus_identity, load_corpus, resolve_source
from .examples import example_features, pack_examples, pad_examples
from .stats import split_stats, unigram_baseline
from .tokenizer import load_tokenizer, tokenizer_identity, train_tokenizer

FORMAT_VERSION = 1  # bump when the layout of prepared examples changes
EVAL_SPLIT_SEED = 0
MANIFEST = "prepared.json"


@dataclass
class PreparedData:
    """Fixed-length examples (input_ids, attention_mask, labels, num_bytes) and their tokenizer.

    stats: {train,eval}_{documents,examples,tokens,bytes}, vocab_size and unigram_baseline
    (nats per predicted eval token). reused: True when the cache already held this result.
    """

    train: datasets.Dataset
    eval: datasets.Dataset
    tokenizer: PreTrainedTokenizerBase
    cache_path: Path
    stats: dict
    reused: bool = False


def _check(data: DataConfig, seq_len: int) -> None:
    if seq_len < 2:
        raise UserError(f"model.seq_len: {seq_len} is too short (at least 2 tokens)")
    if data.padding_side not in ("right", "left"):
        raise UserError(f"data.padding_side: {data.padding_side!r} is not 'right' or 'left'")
    if data.eval_source is None and not 0 < data.eval_fraction < 1:
        raise UserError(f"data.eval_fraction: {data.eval_fraction} must be between 0 and 1 (or set data.eval_source)")


def fingerprint_inputs(data: DataConfig, seq_len: int) -> dict:
    """Everything that determines the prepared examples, as JSON-able data."""
    held_out = (
        {"corpus": corpus_identity(data.eval_source, data.eval_split), "max_documents": data.max_eval_documents}
        if data.eval_source is not None
        else {"fraction": data.eval_fraction, "seed": EVAL_SPLIT_SEED, "max_documents": data.max_eval_documents}
    )
    return {
        "format_version": FORMAT_VERSION,
        "corpus": corpus_identity(data.source, data.split),
        "eval": held_out,
        "text_field": data.text_field,
        "lowercase": data.lowercase,
        "max_documents": data.max_documents,
        "tokenizer": tokenizer_identity(data.tokenizer, data.vocab_size),
        "seq_len": seq_len,
        "packing": data.packing,
        "padding_side": None if data.packing else data.padding_side,
        "add_bos": data.add_bos,
        "add_eos": True if data.packing else data.add_eos,
        # packing drops each worker's last partial block, so its result depends on the worker count
        "workers": max(1, data.num_proc or 1) if data.packing else None,
    }


def cache_path(data: DataConfig, seq_len: int) -> Path:
    """Where prepare_data keeps (or will keep) the result for this config."""
    resolved = resolve_source(data.source)
    name = resolved if isinstance(resolved, str) else resolved[0].stem
    layout = "packed" if data.packing else f"pad{data.padding_side}"
    key = fingerprint(fingerprint_inputs(data, seq_len))
    return Path(data.cache_dir).expanduser() / "prepared" / f"{slug(name)}-L{seq_len}-{layout}-{key}"


@contextmanager
def _progress_bars(enabled: bool):
    """Silence datasets' progress bars for the duration, restoring the previous setting."""
    was_disabled = datasets.are_progress_bars_disabled()
    if not enabled:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not enabled and not was_disabled:
            datasets.enable_progress_bars()


def _documents(data: DataConfig) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Train and eval documents: eval_source if given, else a seeded eval_fraction of source."""
    options = dict(text_field=data.text_field, lowercase=data.lowercase)
    corpus = load_corpus(data.source, split=data.split, max_documents=data.max_documents, **options)
    if data.eval_source is not None:
        held_out = load_corpus(data.eval_source, split=data.eval_split, max_documents=data.max_eval_documents, **options)
        return corpus, held_out
    n_eval = max(1, round(len(corpus) * data.eval_fraction))
    if n_eval >= len(corpus):
        raise UserError(f"data.source: {len(corpus)} document(s) are too few to split off an eval set; set data.eval_source")
    parts = corpus.train_test_split(test_size=n_eval, seed=EVAL_SPLIT_SEED)
    held_out = parts["test"]
    if data.max_eval_documents is not None:
        held_out = held_out.select(range(min(data.max_eval_documents, len(held_out))))
    return parts["train"], held_out


def _examples(docs: datasets.Dataset, tokenizer, data: DataConfig, seq_len: int, cache_file: Path, split: str) -> datasets.Dataset:
    if data.packing:
        function, kwargs = pack_examples, dict(add_bos=data.add_bos)
    else:
        function, kwargs = pad_examples, dict(padding_side=data.padding_side, add_bos=data.add_bos, add_eos=data.add_eos)
    examples = docs.map(
        function,
        batched=True,
        remove_columns=docs.column_names,
        fn_kwargs=dict(tokenizer=tokenizer, seq_len=seq_len, **kwargs),
        features=example_features(seq_len),
        num_proc=data.num_proc if data.num_proc and data.num_proc > 1 else None,
        cache_file_name=str(cache_file),
        desc=f"tokenizing {split} ({'packed' if data.packing else 'padded'}, L={seq_len})",
    )
    if len(examples) == 0:
        raise UserError(f"data.source: the {split} documents hold fewer than seq_len={seq_len} tokens, no example can be packed")
    return examples


def _build(tmp: Path, documents: dict, tokenizer, data: DataConfig, seq_len: int, inputs: dict) -> None:
    """Tokenize and save everything into `tmp` (renamed into the cache by the caller)."""
    stats = {"vocab_size": len(tokenizer)}
    splits = {}
    for split, docs in documents.items():
        splits[split] = _examples(docs, tokenizer, data, seq_len, tmp / "work" / f"{split}.arrow", split)
        splits[split].save_to_disk(str(tmp / split))
        stats[f"{split}_documents"] = len(docs)
        stats.update({f"{split}_{key}": value for key, value in split_stats(splits[split]).items()})
    stats["unigram_baseline"] = unigram_baseline(splits["train"], splits["eval"], len(tokenizer))
    shutil.rmtree(tmp / "work")
    tokenizer.save_pretrained(str(tmp / "tokenizer"))
    (tmp / MANIFEST).write_text(json.dumps({"inputs": inputs, "stats": stats}, indent=2), encoding="utf-8")


def load_prepared(path: Path, reused: bool = True) -> PreparedData:
    """Open a prepared cache directory (memory-mapped datasets, saved tokenizer)."""
    try:
        stats = json.loads((path / MANIFEST).read_text(encoding="utf-8"))["stats"]
        train = datasets.load_from_disk(str(path / "train"))
        held_out = datasets.load_from_disk(str(path / "eval"))
        tokenizer = AutoTokenizer.from_pretrained(str(path / "tokenizer"))
    except Exception as err:  # files removed or edited by hand
        raise UserError(f"{path}: damaged prepared-data cache ({reason(err)}); delete the directory to rebuild it") from None
    return PreparedData(train=train, eval=held_out, tokenizer=tokenizer, cache_path=path, stats=stats, reused=reused)


def prepare_data(data: DataConfig, seq_len: int, progress: bool = True) -> PreparedData:
    """Tokenize `data` into fixed-length examples of seq_len tokens, or reuse the cached result.

    Corpus and tokenizer are read before anything is written, so bad input leaves no trace.
    """
    _check(data, seq_len)
    inputs = fingerprint_inputs(data, seq_len)
    path = cache_path(data, seq_len)
    if (path / MANIFEST).is_file():
        return load_prepared(path, reused=True)
    with _progress_bars(progress):
        train_docs, eval_docs = _documents(data)
        tokenizer = load_tokenizer(data.tokenizer) if data.tokenizer else train_tokenizer(train_docs, data.vocab_size)
        documents = {"train": train_docs, "eval": eval_docs}
        publish(path, lambda tmp: _build(tmp, documents, tokenizer, data, seq_len, inputs))
    return load_prepared(path, reused=False)


def prepare_eval_data(data: DataConfig, seq_len: int, progress: bool = True) -> datasets.Dataset:
    """Only the held-out examples (data.eval_source, else data.source), with data.tokenizer.

    For evaluating a trained model on new text: nothing is cached on disk (the tokenizer is the
    model's own and an eval slice is small), so the examples are returned in memory.
    """
    _check(data, seq_len)
    if not data.tokenizer:
        raise UserError("data.tokenizer: evaluating needs the model's tokenizer")
    source = data.eval_source if data.eval_source is not None else data.source
    split = data.eval_split if data.eval_source is not None else data.split
    with _progress_bars(progress), tempfile.TemporaryDirectory() as tmp:
        docs = load_corpus(source, split=split, text_field=data.text_field, lowercase=data.lowercase, max_documents=data.max_eval_documents)
        examples = _examples(docs, load_tokenizer(data.tokenizer), data, seq_len, Path(tmp) / "eval.arrow", "eval")
        return datasets.Dataset.from_dict(examples.to_dict())
