"""Tokenize a run config's corpus into cached fixed-length examples (L = model.seq_len).

Streams the corpus (a Hugging Face dataset id or local .txt/.jsonl/.json/.parquet files), trains
the tokenizer on a sample or loads one, lays out examples of model.seq_len tokens (truncate +
pad, or packing) shard by shard over data.num_proc processes and caches them compactly under
data.cache_dir; an unchanged config reuses the cache, and an interrupted run resumes from its
finished shards. Prints where the cache is, example and token counts, bytes per token on disk,
the vocabulary size and the unigram baseline loss that a trained model must beat.

  masked-mixers prepare configs/tinystories-cpu-mixer.yaml --set data.max_documents=1000
  masked-mixers prepare configs/fineweb-edu-mixer-512.yaml --set data.max_tokens=100000000
"""

from __future__ import annotations

import argparse

from ..core.options import add_overrides
from ..runs.config import load_run_config
from ..runs.factory import check_model_size, model_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="run config YAML (its data section and model.seq_len are used)")
    add_overrides(parser, help="override a config key, e.g. --set data.packing=true (repeatable)")
    parser.add_argument("--source", help="shortcut for --set data.source=PATH_OR_ID")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    from ..data import prepare_data  # imported here so that `--help` stays fast

    run_config = load_run_config(args.config, args.overrides)
    if args.source:
        run_config.data.source = args.source
    check_model_size(run_config.model, run_config.model.vocab_size or run_config.data.vocab_size)  # before tokenizing
    prepared = prepare_data(run_config.data, run_config.model.seq_len, progress=not args.no_progress)
    vocab = len(prepared.tokenizer)
    model_config(run_config.model, vocab)  # a tokenizer larger than model.vocab_size fails here, not mid-training
    stats = prepared.stats
    print(f"{'reused' if prepared.reused else 'prepared'}: {prepared.cache_path}")
    for split in ("train", "eval"):
        print(
            f"{split}: {stats[f'{split}_documents']:,} documents -> {stats[f'{split}_examples']:,} examples of "
            f"L={run_config.model.seq_len}, {stats[f'{split}_tokens']:,} tokens, {stats[f'{split}_bytes']:,} bytes"
        )
        tokens, disk = stats[f"{split}_tokens"], stats[f"{split}_disk_bytes"]
        print(f"{split} on disk: {disk:,} bytes, {disk / max(tokens, 1):.3f} bytes per token")
    print(f"vocabulary: {vocab} tokens")
    print(f"unigram baseline: {stats['unigram_baseline']:.4f} nats per token (eval under train unigram frequencies)")
    return 0
