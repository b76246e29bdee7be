"""prepare_data: a DataConfig and L -> cached, memory-mapped train/eval examples and a tokenizer.

The cache directory is named by a fingerprint of every input that shapes the result (corpus
files by path, size and modification time or hub id, config and split; text options; tokenizer;
L and layout; budget and shard size; FORMAT_VERSION). An unchanged config reuses it without
reading the corpus; any change builds a new one. The corpus is streamed (stream.py) and
tokenized shard by shard (shards.py) into a fixed work directory beside the cache, under a lock;
a killed preparation resumes there, and the finished directory is renamed into place with
prepared.json (fingerprint inputs, layout, shard files, statistics) written last.

Stored examples are compact (examples.py): token ids in uint16/uint32 and num_bytes only; the
int64 input_ids, attention_mask and labels are derived when rows are read.
"""

from __future__ import annotations

import json
import resource
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import datasets
import pyarrow as pa
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from ..core.errors import UserError, reason
from ..core.files import atomic_write_json, check_output_dir
from ..runs.config import DataConfig
from ..runs.layout import check_padding_side
from .cache import build_lock, discard, fingerprint, publish_work, remove_dead_builds, slug, work_dir
from .corpus import corpus_identity, resolve_source
from .examples import Layout, as_examples
from .progress import PrepareProgress
from .shards import SPLITS, Encoder, ShardSpec, build_shards, default_workers, rows_table, shard_files, shard_rows
from .stats import stored_token_counts, unigram_baseline_from_counts
from .stream import labelled_documents, stream_texts
from .tokenizer import load_tokenizer, tokenizer_identity, train_tokenizer

# 1: int64 input_ids, attention_mask, labels and num_bytes per example (one saved Dataset per split)
# 2: compact: uint16/uint32 real token ids + num_bytes, in shard files listed by prepared.json
FORMAT_VERSION = 2
MANIFEST = "prepared.json"


@dataclass
class PreparedData:
    """Fixed-length examples (input_ids, attention_mask, labels, num_bytes) and their tokenizer.

    train/eval are memory-mapped compact stores seen through `examples.as_examples`: rows and
    slices come back as full examples. stats: {train,eval}_{documents,examples,tokens,bytes},
    vocab_size and unigram_baseline (nats per predicted eval token). reused: True when the cache
    already held this result.
    """

    train: datasets.Dataset
    eval: datasets.Dataset
    tokenizer: PreTrainedTokenizerBase
    cache_path: Path
    stats: dict
    reused: bool = False
    layout: Layout | None = field(default=None)


def _check(data: DataConfig, seq_len: int) -> None:
    if seq_len < 2:
        raise UserError(f"model.seq_len: {seq_len} is too short (at least 2 tokens)")
    check_padding_side(data.padding_side, "data.padding_side")
    if data.eval_source is None and not 0 < data.eval_fraction < 1:
        raise UserError(f"data.eval_fraction: {data.eval_fraction} must be between 0 and 1 (or set data.eval_source)")
    for key in ("max_tokens", "shard_documents", "num_proc", "tokenizer_sample_documents"):
        value = getattr(data, key)
        if value is not None and value < 1:
            raise UserError(f"data.{key}: {value} must be at least 1")


def fingerprint_inputs(data: DataConfig, seq_len: int) -> dict:
    """Everything that determines the prepared examples, as JSON-able data (not the worker count)."""
    held_out = (
        {
            "corpus": corpus_identity(data.eval_source, data.eval_split, _eval_config_name(data)),
            "max_documents": data.max_eval_documents,
        }
        if data.eval_source is not None
        else {"fraction": data.eval_fraction, "max_documents": data.max_eval_documents}
    )
    tokenizer = tokenizer_identity(data.tokenizer, data.vocab_size)
    if data.tokenizer is None:
        tokenizer["sample_documents"] = data.tokenizer_sample_documents
    return {
        "format_version": FORMAT_VERSION,
        "corpus": corpus_identity(data.source, data.split, data.config_name),
        "eval": held_out,
        "text_field": data.text_field,
        "lowercase": data.lowercase,
        "max_documents": data.max_documents,
        "tokenizer": tokenizer,
        "seq_len": seq_len,
        "packing": data.packing,
        "padding_side": None if data.packing else data.padding_side,
        "add_bos": data.add_bos,
        "add_eos": True if data.packing else data.add_eos,
        "max_tokens": data.max_tokens,
        "shard_documents": data.shard_documents,
    }


def _eval_config_name(data: DataConfig) -> str | None:
    """config_name names a configuration of `source`; it applies to eval_source only when that is the same dataset."""
    return data.config_name if data.eval_source == data.source else None


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


def _where(source) -> str:
    return source if isinstance(source, str) else ", ".join(map(str, source))


def _check_counts(data: DataConfig, seq_len: int, totals: dict) -> None:
    """One line for a corpus that yields no documents or no example in a split."""
    if totals["eval"]["documents"] == 0 and data.eval_source is not None:
        raise UserError(f"{_where(data.eval_source)}: empty corpus (no documents with text)")
    if totals["train"]["documents"] == 0:
        if data.eval_source is None and totals["eval"]["documents"]:
            raise UserError(
                f"data.source: {totals['eval']['documents']} document(s) are too few to split off an eval set; "
                "set data.eval_source"
            )
        raise UserError(f"{_where(data.source)}: empty corpus (no documents with text)")
    for split in SPLITS:
        if totals[split]["examples"] == 0:
            raise UserError(
                f"data.source: the {split} documents hold fewer than seq_len={seq_len} tokens, no example can be packed"
            )


def _training_sample(data: DataConfig):
    """The first tokenizer_sample_documents training documents (a stream; BPE needs no more)."""
    texts = (text for split, text in labelled_documents(data) if split == "train")
    return islice(texts, data.tokenizer_sample_documents)


def _tokenizer(data: DataConfig, work: Path) -> PreTrainedTokenizerBase:
    """Load or train the tokenizer, once: a resumed build reuses the one saved in `work`."""
    saved = work / "tokenizer"
    if saved.is_dir():
        return AutoTokenizer.from_pretrained(str(saved))
    tokenizer = (
        load_tokenizer(data.tokenizer) if data.tokenizer else train_tokenizer(_training_sample(data), data.vocab_size)
    )
    staging = work / ".tokenizer.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    tokenizer.save_pretrained(str(staging))
    staging.rename(saved)
    return tokenizer


def layout_of(data: DataConfig, seq_len: int, tokenizer) -> Layout:
    return Layout(
        seq_len=seq_len, packed=data.packing, padding_side=data.padding_side, pad_token_id=tokenizer.pad_token_id
    )


def _spec(data: DataConfig, seq_len: int, tokenizer, max_tokens: int | None) -> ShardSpec:
    return ShardSpec(
        layout_of(data, seq_len, tokenizer),
        len(tokenizer),
        data.add_bos,
        data.add_eos,
        data.shard_documents,
        max_tokens,
    )


def _source_bytes(data: DataConfig) -> int | None:
    """Size of the local corpus files, for the progress estimate (None for a hub dataset)."""
    total = 0
    for source in (data.source, data.eval_source):
        resolved = resolve_source(source) if source is not None else []
        if isinstance(resolved, str):
            return None
        total += sum(p.stat().st_size for p in resolved)
    return total


def _build(work: Path, data: DataConfig, seq_len: int, inputs: dict, progress: bool) -> None:
    """Tokenize into `work` (resuming what an earlier run finished) and write the manifest last."""
    work.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(data, work)
    spec = _spec(data, seq_len, tokenizer, data.max_tokens)
    bar = PrepareProgress(progress, data.max_tokens, _source_bytes(data))
    try:
        with Encoder(tokenizer, data.num_proc or default_workers()) as encoder:
            records = build_shards(labelled_documents(data), encoder, spec, work, bar)
    finally:
        bar.close()
    totals = {
        split: {key: sum(r.counts[split][key] for r in records) for key in ("documents", "examples", "tokens", "bytes")}
        for split in SPLITS
    }
    _check_counts(data, seq_len, totals)
    files = {split: shard_files(work, split, records) for split in SPLITS}
    stats = {"vocab_size": len(tokenizer), **{f"{s}_{k}": v for s in SPLITS for k, v in totals[s].items()}}
    stats.update({f"{s}_disk_bytes": sum((work / name).stat().st_size for name in files[s]) for s in SPLITS})
    train, held_out = (_open(work, files[split], spec.layout) for split in SPLITS)
    stats["unigram_baseline"] = unigram_baseline_from_counts(stored_token_counts(train), held_out, len(tokenizer))
    manifest = {
        "format_version": FORMAT_VERSION,
        "inputs": inputs,
        "layout": spec.layout.to_dict(),
        "files": files,
        "stats": stats,
    }
    atomic_write_json(work / MANIFEST, manifest)


def _allow_open_files(count: int) -> None:
    """Raise the soft limit on open files toward the hard one: each memory-mapped shard holds a
    file open, and a corpus of billions of tokens has a thousand or more shards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard)
        )


def _open(path: Path, files: list[str], layout: Layout) -> datasets.Dataset:
    """A split's shard files as one memory-mapped dataset of full examples."""
    _allow_open_files(2 * len(files))  # both splits are open at once; a split's eval is far smaller
    parts = [datasets.Dataset.from_file(str(path / name)) for name in files]
    return as_examples(datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0], layout)


def manifest_version(manifest: dict) -> int:
    """The format a cache was written in (format 1 kept it among the fingerprint inputs)."""
    return manifest.get("format_version", manifest.get("inputs", {}).get("format_version", 1))


def load_prepared(path: Path, reused: bool = True) -> PreparedData:
    """Open a prepared cache directory (memory-mapped compact shards, saved tokenizer)."""
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        version = manifest_version(manifest)
        if version != FORMAT_VERSION:
            raise UserError(
                f"{path}: prepared-data format {version}, this version reads {FORMAT_VERSION}; "
                "run prepare again to rebuild it"
            )
        layout = Layout(**manifest["layout"])
        train, held_out = (_open(path, manifest["files"][split], layout) for split in SPLITS)
        tokenizer = AutoTokenizer.from_pretrained(str(path / "tokenizer"))
    except UserError:
        raise
    except Exception as err:  # files removed or edited by hand
        raise UserError(
            f"{path}: damaged prepared-data cache ({reason(err)}); delete the directory to rebuild it"
        ) from None
    return PreparedData(
        train=train,
        eval=held_out,
        tokenizer=tokenizer,
        cache_path=path,
        stats=manifest["stats"],
        reused=reused,
        layout=layout,
    )


def _current(path: Path) -> bool:
    """True when `path` holds a finished cache this version reads; one of another format is removed."""
    if not (path / MANIFEST).is_file():
        return False
    try:
        version = manifest_version(json.loads((path / MANIFEST).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return True  # damaged: load_prepared says so
    if version == FORMAT_VERSION:
        return True
    shutil.rmtree(path)  # an older layout is rebuilt, never misread
    return False


def prepare_data(data: DataConfig, seq_len: int, progress: bool = True) -> PreparedData:
    """Tokenize `data` into fixed-length examples of seq_len tokens, or reuse the cached result.

    Interrupted (killed, Ctrl-C), it resumes from its finished shards when run again. Bad input
    (a UserError) discards the partial work, so nothing half written stays behind.
    """
    _check(data, seq_len)
    try:  # a cache folder that is a file (or cannot be made) is one line naming the key, before any work
        check_output_dir(Path(data.cache_dir).expanduser())
    except UserError as err:
        raise UserError(f"data.cache_dir: {err}") from None
    inputs = fingerprint_inputs(data, seq_len)
    path = cache_path(data, seq_len)
    if _current(path):
        return load_prepared(path, reused=True)
    with build_lock(path) as lock:
        if _current(path):  # another process built it while we waited
            return load_prepared(path, reused=True)
        remove_dead_builds(
            path.parent
        )  # temporary builds of killed processes (a `.partial` work folder is resumed instead)
        work = work_dir(path)
        try:
            with _progress_bars(progress):
                _build(work, data, seq_len, inputs, progress)
        except UserError:
            discard(work, lock, Path(data.cache_dir).expanduser())
            raise
        publish_work(work, path)
    return load_prepared(path, reused=False)


def prepare_eval_data(data: DataConfig, seq_len: int, progress: bool = True) -> datasets.Dataset:
    """Only the held-out examples (data.eval_source, else data.source), with data.tokenizer.

    For evaluating a trained model on new text: nothing is cached on disk (the tokenizer is the
    model's own and an eval slice is small), so the examples are kept in memory.
    """
    _check(data, seq_len)
    if not data.tokenizer:
        raise UserError("data.tokenizer: evaluating needs the model's tokenizer")
    source = data.eval_source if data.eval_source is not None else data.source
    split = data.eval_split if data.eval_source is not None else data.split
    tokenizer = load_tokenizer(data.tokenizer)
    spec = _spec(data, seq_len, tokenizer, None)
    texts = stream_texts(
        source,
        split=split,
        text_field=data.text_field,
        lowercase=data.lowercase,
        config_name=data.config_name,
        max_documents=data.max_eval_documents,
    )
    tables = []
    with Encoder(tokenizer, 1) as encoder:
        while shard := list(islice(texts, data.shard_documents)):
            tables.append(rows_table(shard_rows(shard, encoder, spec), spec))
    if not tables:
        raise UserError(f"{_where(source)}: empty corpus (no documents with text)")
    table = pa.concat_tables(tables)
    if table.num_rows == 0:
        raise UserError(
            f"data.source: the eval documents hold fewer than seq_len={seq_len} tokens, no example can be packed"
        )
    stored = datasets.Dataset(table, info=datasets.DatasetInfo(features=spec.layout.features(spec.vocab_size)))
    return as_examples(stored, spec.layout)
