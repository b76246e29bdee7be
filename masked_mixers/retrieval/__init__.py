"""Retrieval with language-model embeddings (the paper's section on masked mixer embeddings).

pairs.py builds and stores (query, passage) pairs; embedding.py turns a causal LM into an
embedder; metrics.py ranks candidates; bm25.py is the lexical baseline; direct.py is the
paper's direct-embedding retrieval model; infonce.py fine-tunes the LM itself; benchmark.py
runs all of it on any number of language models (a mixer and a transformer by default); f5.py
runs finding F5 by the paper's protocol (`run_f5`); significance.py tests results against chance.
"""

from .benchmark import METHODS, benchmark_models, format_table, markdown_table, plot_benchmark, retrieval_benchmark
from .bm25 import bm25_scores
from .direct import RetrievalMixer, RetrievalMixerConfig, evaluate_direct, train_direct
from .embedding import POSITIONS, embed_texts, load_embeddings, load_language_model, save_embeddings
from .f5 import beats_chance, direct_table, f5_settings, run_f5
from .infonce import finetune_infonce, info_nce_loss
from .metrics import candidate_counts, cosine_scores, metrics_vs_candidates, ranking_metrics, sample_negatives
from .pairs import PAIR_KINDS, Pair, PairSplits, build_pairs, load_splits, read_pairs, save_splits, split_pairs

__all__ = [
    "METHODS",
    "PAIR_KINDS",
    "POSITIONS",
    "Pair",
    "PairSplits",
    "RetrievalMixer",
    "RetrievalMixerConfig",
    "benchmark_models",
    "bm25_scores",
    "build_pairs",
    "candidate_counts",
    "cosine_scores",
    "embed_texts",
    "evaluate_direct",
    "finetune_infonce",
    "format_table",
    "info_nce_loss",
    "load_embeddings",
    "load_language_model",
    "load_splits",
    "markdown_table",
    "metrics_vs_candidates",
    "plot_benchmark",
    "ranking_metrics",
    "read_pairs",
    "retrieval_benchmark",
    "sample_negatives",
    "save_embeddings",
    "save_splits",
    "split_pairs",
    "train_direct",
    "beats_chance",
    "direct_table",
    "f5_settings",
    "run_f5",
]
