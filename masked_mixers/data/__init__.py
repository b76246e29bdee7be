"""Data pipeline: corpus -> tokenizer -> fixed-length token examples, cached on disk.

corpus.py reads documents, tokenizer.py trains or loads tokenizers, examples.py lays tokens out
as length-L examples, cache.py names and publishes cache directories, stats.py summarises the
result (including the unigram baseline) and prepare.py ties them together.
"""

from .corpus import load_corpus
from .examples import IGNORE_INDEX
from .prepare import PreparedData, cache_path, load_prepared, prepare_data, prepare_eval_data
from .stats import unigram_baseline
from .tokenizer import load_tokenizer, train_tokenizer

__all__ = [
    "IGNORE_INDEX",
    "PreparedData",
    "cache_path",
    "load_corpus",
    "load_prepared",
    "load_tokenizer",
    "prepare_data",
    "prepare_eval_data",
    "train_tokenizer",
    "unigram_baseline",
]
