"""Preparation throughput against the tokenizer's own encode_batch, and bytes per token on disk.

Examples:
  masked-mixers bench prepare --source stories.jsonl
  masked-mixers bench prepare --source corpus.jsonl --tokenizer tok.model --num-proc 1,2 --seq-len 512 --packing

The same documents are (1) encoded by the tokenizer's `encode_batch` (the `tokenizers` library,
texts already in memory, no offsets) and (2) prepared by `prepare_data` from the file: streaming
and parsing the corpus, encoding (plus a few offsets per example, for bits per byte), laying out and writing the
compact shards, and the unigram baseline, into a fresh cache. Both run with the tokenizers
library single-threaded, so per-core rates compare like with like; prepare with num_proc N uses
N worker processes. The ratio is text bytes per second per core (the same text for both; token
counts differ by the eos tokens and the packing remainder). Tokenizer training, when no
--tokenizer is given, happens once before and is reported separately.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from ..core.files import atomic_write_json
from ..core.options import add_output
from ..runs.config import DataConfig


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, nargs="+", help="local corpus file(s) (.jsonl, .txt, .parquet)")
    parser.add_argument("--text-field", default="text", help="text field of .jsonl/.parquet records")
    parser.add_argument(
        "--max-documents", type=int, default=None, help="read only the first N documents (default: all)"
    )
    parser.add_argument(
        "--tokenizer", default=None, help="tokenizer to use as is; default: train a BPE on a sample first"
    )
    parser.add_argument(
        "--vocab-size", type=int, default=4096, help="vocabulary of the BPE trained when --tokenizer is not given"
    )
    parser.add_argument("--seq-len", type=int, default=512, help="L: tokens per example")
    parser.add_argument("--packing", action="store_true", help="pack documents (default: truncate + pad)")
    parser.add_argument(
        "--num-proc", type=_ints, default=[1], help="comma list of worker counts for prepare (default 1)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="time each contender this many times, keep the fastest")
    add_output(
        parser,
        folder=False,
        dest="json_out",
        old=("--json",),
        default="runs/bench/prepare.json",
        help="JSON file with every measurement",
    )


def _best(repeats: int, function):
    best = None
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        seconds = time.perf_counter() - start
        best = (seconds, value) if best is None or seconds < best[0] else best
    return best


def _tokenizer_path(args, data: DataConfig, work: Path) -> tuple[str, float | None]:
    if args.tokenizer:
        return args.tokenizer, None
    from ..data.prepare import _training_sample
    from ..data.tokenizer import train_tokenizer

    start = time.perf_counter()
    tokenizer = train_tokenizer(_training_sample(data), data.vocab_size)
    seconds = time.perf_counter() - start
    tokenizer.save_pretrained(str(work / "tokenizer"))
    return str(work / "tokenizer"), seconds


def _encode_batch(texts: list[str], tokenizer) -> int:
    encodings = tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False)
    return sum(len(e.ids) for e in encodings)


def _prepare(data: DataConfig, seq_len: int, cache: Path) -> dict:
    from ..data import prepare_data

    prepared = prepare_data(DataConfig(**{**vars(data), "cache_dir": str(cache)}), seq_len, progress=False)
    return prepared.stats


def run(args: argparse.Namespace) -> int:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one core per encoder: per-core rates on both sides
    from ..data import load_tokenizer, stream_texts

    data = DataConfig(
        source=args.source if len(args.source) > 1 else args.source[0],
        text_field=args.text_field,
        max_documents=args.max_documents,
        vocab_size=args.vocab_size,
        packing=args.packing,
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data.tokenizer, train_seconds = _tokenizer_path(args, data, work)
        tokenizer = load_tokenizer(data.tokenizer)
        texts = list(stream_texts(data.source, text_field=data.text_field, max_documents=data.max_documents))
        text_bytes = sum(len(t.encode("utf-8")) for t in texts)
        seconds, tokens = _best(args.repeats, lambda: _encode_batch(texts, tokenizer))
        rows = [
            {
                "contender": "encode_batch",
                "workers": 1,
                "seconds": seconds,
                "tokens": tokens,
                "tokens_per_second": tokens / seconds,
                "text_mb_per_second_per_core": text_bytes / seconds / 1e6,
            }
        ]
        for workers in args.num_proc:
            data.num_proc = workers
            caches = iter(range(args.repeats))
            seconds, stats = _best(
                args.repeats,
                lambda workers=workers, caches=caches: _prepare(
                    data, args.seq_len, work / f"cache-{workers}-{next(caches)}"
                ),
            )
            stored = stats["train_tokens"] + stats["eval_tokens"]
            disk = stats["train_disk_bytes"] + stats["eval_disk_bytes"]
            rows.append(
                {
                    "contender": "prepare",
                    "workers": workers,
                    "seconds": seconds,
                    "tokens": stored,
                    "tokens_per_second": stored / seconds,
                    "text_mb_per_second_per_core": text_bytes / seconds / workers / 1e6,
                    "disk_bytes": disk,
                    "bytes_per_token": disk / stored,
                }
            )
    base = rows[0]["text_mb_per_second_per_core"]
    for row in rows:
        row["vs_encode_batch_per_core"] = row["text_mb_per_second_per_core"] / base
    print(
        f"{len(texts):,} documents, {text_bytes / 1e6:,.1f} MB of text, "
        f"L={args.seq_len} {'packed' if args.packing else 'padded'}, "
        f"vocabulary {len(tokenizer):,}"
        + (f", tokenizer trained in {train_seconds:.1f} s" if train_seconds is not None else "")
    )
    print(
        "| contender | workers | seconds | tokens | tokens/s | text MB/s per core | vs encode_batch per core "
        "| bytes/token on disk |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        per_token = f"{r['bytes_per_token']:.3f}" if "bytes_per_token" in r else "-"
        print(
            f"| {r['contender']} | {r['workers']} | {r['seconds']:.2f} | {r['tokens']:,} "
            f"| {r['tokens_per_second']:,.0f} | "
            f"{r['text_mb_per_second_per_core']:.3f} | {r['vs_encode_batch_per_core']:.0%} | {per_token} |"
        )
    results = {
        "documents": len(texts),
        "text_bytes": text_bytes,
        "seq_len": args.seq_len,
        "packing": args.packing,
        "vocab_size": len(tokenizer),
        "tokenizer_train_seconds": train_seconds,
        "rows": rows,
    }
    atomic_write_json(args.json_out, results)
    print(f"bench prepare -> {args.json_out}")
    return 0
