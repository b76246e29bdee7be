"""Data pipeline: corpus -> tokenizer -> fixed-length token examples, cached on disk.

corpus.py reads documents into memory-mapped datasets, stream.py streams them (hub and local)
and assigns train/eval, tokenizer.py trains or loads tokenizers, examples.py lays tokens out as
compact length-L examples and expands them when read, shards.py tokenizes a stream shard by
shard (resumably, over worker processes), progress.py reports tokens/s and ETA, cache.py names,
locks and publishes cache directories, stats.py computes the unigram baseline and prepare.py
ties them together.
"""

from .corpus import load_corpus
from .examples import IGNORE_INDEX, Layout, as_examples, expand_batch, first_examples, token_dtype
from .prepare import FORMAT_VERSION, PreparedData, cache_path, load_prepared, prepare_data, prepare_eval_data
from .stats import unigram_baseline
from .stream import stream_texts
from .tokenizer import load_tokenizer, train_tokenizer

__all__ = [
    "FORMAT_VERSION",
    "IGNORE_INDEX",
    "Layout",
    "PreparedData",
    "as_examples",
    "cache_path",
    "expand_batch",
    "first_examples",
    "load_corpus",
    "load_prepared",
    "load_tokenizer",
    "prepare_data",
    "prepare_eval_data",
    "stream_texts",
    "token_dtype",
    "train_tokenizer",
    "unigram_baseline",
]
