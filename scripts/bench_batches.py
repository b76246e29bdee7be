"""Batch building time as the Trainer does it (rows by __getitems__, num_bytes removed,
default_data_collator), and bytes per token of the prepared Arrow files.

Runs against whichever masked_mixers is on PYTHONPATH, so the same script measures the previous
layout (a checkout of an older commit) and the compact one (docs/benchmarks.md):
  PYTHONPATH=<checkout> OMP_NUM_THREADS=1 python3 scripts/bench_batches.py CACHE_DIR
"""

import json
import os
import sys
import time
from pathlib import Path

os.environ["TOKENIZERS_PARALLELISM"] = "false"  # set before the imports below load tokenizers
from torch.utils.data import DataLoader
from transformers import default_data_collator

from masked_mixers.data import prepare_data
from masked_mixers.runs.config import DataConfig

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

out = {}
for packing, L in ((False, 128), (True, 512)):
    d = DataConfig(
        source=str(DATA / "tinystories/train-lowercase.jsonl"),
        eval_source=str(DATA / "tinystories/valid-lowercase.jsonl"),
        tokenizer=str(DATA / "tokenizers/tinystories-sp4096.model"),
        packing=packing,
        num_proc=1,
        cache_dir=sys.argv[1],
    )
    p = prepare_data(d, L, progress=False)
    ds = p.train.remove_columns(["num_bytes"])
    loader = DataLoader(ds, batch_size=16, shuffle=True, collate_fn=default_data_collator)
    best = None
    for _ in range(3):
        start = time.perf_counter()
        n = 0
        for batch in loader:  # noqa: B007 (the last batch is read after the loop, for its dtype)
            n += 1
            if n == 200:
                break
        t = (time.perf_counter() - start) / n
        best = t if best is None or t < best else best
    size = sum(f.stat().st_size for f in Path(p.cache_path).rglob("*.arrow"))
    out[f"{'packed' if packing else 'padded'}-L{L}"] = {
        "ms_per_batch": best * 1e3,
        "arrow_bytes": size,
        "tokens": p.stats["train_tokens"] + p.stats["eval_tokens"],
        "bytes_per_token": size / (p.stats["train_tokens"] + p.stats["eval_tokens"]),
        "dtype": str(batch["input_ids"].dtype),
    }
print(json.dumps(out, indent=1))
