"""Finding F5 of the paper, run by its own protocol on a mixer and a Llama: `run_f5`.

The paper trains its direct-embedding retrieval model (direct.py) on frozen embeddings of
(summary, story) pairs until the train loss reaches 0 and reports train and test cross entropy
against the number of candidates, then fine-tunes whole models with InfoNCE (infonce.py, one
query against 31 candidates per step, temperature 0.02). No summaries exist for the stories this
project can read offline, so the pairs here are sentence pairs, several per story
(`queries_per_document`) from every story given, split by story: a test query's story, and so
its passage, was never seen by the direct model.

`run_f5` returns plain numbers (JSON-ready) for a scorecard and prints nothing but progress bars:
per family, the direct model's train and test CE and top-1 at each n with chance beside them and
the binomial test of test top-1 (significance.py), cosine top-1 of the raw embeddings and, when
`infonce` is among `settings.methods`, top-1 after InfoNCE fine-tuning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path

from ..core.errors import UserError
from ..runs.layout import SCORE, input_side
from .benchmark import embed_splits, infonce_then_cosine
from .direct import fit_direct
from .embedding import load_embeddings, load_language_model, save_embeddings
from .metrics import cosine_scores, metrics_vs_candidates
from .pairs import PairSplits, build_pairs, passage_index, split_pairs
from .settings import RetrievalSettings
from .significance import chance_test

# The reference settings of the direct model (findings.md F5; blbadger/maskedmixers mixer_lm/train_retrieval.py).
# Candidates count passages: the reference's n_context 32 is the query + 31 candidates (chance ln 31).
REFERENCE = {
    "direct_candidates": [31, 127],
    "direct_hidden_size": None,  # the embedding width
    "direct_layers": 8,
    "direct_learning_rate": 1e-4,
    "direct_warmup_steps": 500,
    "direct_batch_size": 128,
    "direct_epochs": 200,
    "direct_stop": "fixed",
    "direct_mixing_init": "uniform",
}
F5_DEFAULTS = {"kind": "sentence", "methods": ["cosine", "direct", "infonce"], "temperature": 0.02, **REFERENCE}


def f5_settings(**overrides) -> RetrievalSettings:
    """RetrievalSettings with F5's choices (sentence pairs, cosine + direct + InfoNCE, the direct model at the
    reference settings, n_context 32 and 128), then `overrides`."""
    return RetrievalSettings(**{**F5_DEFAULTS, **overrides})


def reference_settings() -> RetrievalSettings:
    """F5's settings with nothing overridden: the reference's, to list a scale's deviations against."""
    return f5_settings()


def f5_pairs(documents: Sequence[str], settings: RetrievalSettings) -> PairSplits:
    """Sentence pairs of every document, `queries_per_document` per story, split by story."""
    pairs = build_pairs(
        documents,
        "sentence",
        seed=settings.seed,
        min_query_words=settings.min_query_words,
        queries_per_document=settings.queries_per_document,
    )
    splits = split_pairs(pairs, settings.test_fraction, settings.seed, settings.max_test)
    if not splits.train or not splits.test:
        raise UserError(f"F5: {len(pairs)} pairs from {len(documents)} documents are too few to split")
    return splits


def _embedding_key(model_dir, splits, settings) -> str:
    """What a cached embedding file depends on: the model's weights (file sizes and times), the pairs
    and how texts are embedded. A file made for other pairs or a retrained model is not reused."""
    weights = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in Path(model_dir).glob("*.safetensors"))
    texts = [(p.query, p.passage) for split in (splits.test, splits.train) for p in split]
    blob = json.dumps([weights, texts, settings.position, settings.max_length], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _cached_embeddings(model_dir, model, tokenizer, splits, settings, cache: Path | None, progress: bool) -> dict:
    """embed_splits, read from / written to `cache` (a safetensors file) when given and made for these inputs."""
    names = [f"{split}_{part}" for split in ("test", "train") for part in ("queries", "passages", "targets")]
    key = _embedding_key(model_dir, splits, settings) if cache is not None else None
    if cache is not None and cache.is_file():
        tensors, metadata = load_embeddings(cache)
        if metadata.get("key") == key:
            return {
                split: tuple(tensors[f"{split}_{part}"] for part in ("queries", "passages", "targets"))
                for split in ("test", "train")
            }
    embedded = embed_splits(model, tokenizer, splits, settings, progress)
    if cache is not None:
        save_embeddings(
            cache, dict(zip(names, [t for split in ("test", "train") for t in embedded[split]])), {"key": key}
        )
    return embedded


def _with_chance(rows: list[dict], targets, settings) -> list[dict]:
    """Each metric row with the binomial chance test of its top-1 (significance.py)."""
    for row in rows:
        row.update(
            chance_test(round(row["top1"] * len(targets)), len(targets), row["candidates"], settings.significance)
        )
    return rows


def _cosine_rows(queries, passages, targets, counts, settings) -> list[dict]:
    """Cosine top-1/top-10/MRR at each n, with the binomial chance test of top-1."""
    return _with_chance(
        metrics_vs_candidates(cosine_scores(queries, passages), counts, settings.seed, targets), targets, settings
    )


def _infonce(model, tokenizer, splits, settings, counts, targets, progress) -> dict:
    """InfoNCE fine-tuning (benchmark.infonce_then_cosine), its rows with the chance test of top-1."""
    rows, loss = infonce_then_cosine(model, tokenizer, splits, settings, counts, targets, progress)
    _with_chance(rows, targets, settings)
    return {
        "variant": loss["variant"],
        "steps": settings.infonce_steps,
        "candidates_per_step": settings.infonce_candidates,
        "temperature": settings.temperature,
        "loss_first": loss["first"],
        "loss_last": loss["last"],
        "rows": rows,
    }


def run_family(
    model_dir: str | Path,
    splits: PairSplits,
    settings: RetrievalSettings,
    device: str = "cpu",
    progress: bool = True,
    cache: Path | None = None,
) -> dict:
    """F5 on one language model: direct model rows, cosine rows and (optionally) InfoNCE rows."""
    model, tokenizer = load_language_model(model_dir, device)
    embedded = _cached_embeddings(model_dir, model, tokenizer, splits, settings, cache, progress)
    test_q, test_p, test_t = embedded["test"]
    counts = [n for n in sorted(set(settings.direct_candidates)) if n <= len(test_p)]  # chance 1/n = 1/(n_context - 1)
    result = {
        "model_dir": str(model_dir),
        "model_type": model.config.model_type,
        "padding_side": input_side(model, tokenizer, SCORE),
        "direct": fit_direct(embedded["train"], embedded["test"], settings, device, progress),
        "cosine": _cosine_rows(test_q, test_p, test_t, counts, settings),
    }
    if "infonce" in settings.methods:
        result["infonce"] = _infonce(model, tokenizer, splits, settings, counts, test_t, progress)
    return result


def run_f5(
    mixer_dir: str | Path,
    llama_dir: str | Path,
    settings: RetrievalSettings,
    documents: Sequence[str],
    device: str = "cpu",
    progress: bool = True,
    cache_dir: str | Path | None = None,
) -> dict:
    """F5 on a mixer and a Llama (any two language models) by the paper's protocol; see the module docstring.

    documents: the stories pairs are built from (all of them; e.g. train + valid TinyStories).
    cache_dir: where each family's embeddings are kept between calls (they depend only on the model,
    the documents and the settings' pair and embedding fields, so delete it when those change).
    Returns {"pairs": counts, "settings": the settings used, "families": {"mixer": ..., "llama": ...}};
    each direct row has candidates (n), n_context (n + 1: the query too), train_ce, train_top1, ce (test),
    top1 (test), chance_ce (ln n = ln(n_context - 1)), chance_top1 (1/n), ce_se, hits, queries, p_value,
    beats_chance, epochs and the per-epoch history.
    """
    settings.validate()
    splits = f5_pairs(documents, settings)
    cache = Path(cache_dir) if cache_dir is not None else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    families = {}
    for label, model_dir in (("mixer", mixer_dir), ("llama", llama_dir)):
        families[label] = run_family(
            model_dir, splits, settings, device, progress, cache / f"{label}-embeddings.safetensors" if cache else None
        )
    return {
        "pairs": {
            "documents": len(documents),
            "queries_per_document": settings.queries_per_document,
            "train_pairs": len(splits.train),
            "test_pairs": len(splits.test),
            "train_passages": len(passage_index(splits.train)[0]),
            "test_passages": len(passage_index(splits.test)[0]),
        },
        "settings": dataclasses.asdict(settings),
        "families": families,
    }


def beats_chance(result: dict) -> dict[str, bool]:
    """Per family: does the direct model beat chance on test pairs at any n (the binomial test)?"""
    return {label: any(row["beats_chance"] for row in family["direct"]) for label, family in result["families"].items()}


def _lowest(row: dict) -> str:
    """The lowest test CE and its epoch; "-" for a row saved before it was recorded."""
    return f"{row['min_test_ce']:.3f} ({row['min_test_ce_epoch']})" if "min_test_ce" in row else "-"


def direct_table(result: dict) -> str:
    """Markdown: per family and n candidates (n_context = n + 1), train/test CE (chance ln n; the lowest
    test CE over the epochs, chosen on
    the test pairs) and test top-1 (chance 1/n) with the p-value."""
    lines = [
        "| family | n_context | candidates n | epochs | train CE | test CE ± se | lowest test CE (epoch) | ln n "
        "| train top-1 | test top-1 | 1/n | p (binomial) | beats chance |",
        "|---" * 13 + "|",
    ]
    for label, family in result["families"].items():
        for r in family["direct"]:
            lines.append(
                f"| {label} | {r['candidates'] + 1} | {r['candidates']} | {r['epochs']} | {r['train_ce']:.3f} "
                f"| {r['ce']:.3f} ± {r['ce_se']:.3f} | {_lowest(r)} | {math.log(r['candidates']):.3f} "
                f"| {r['train_top1']:.3f} | {r['top1']:.3f} | {r['chance_top1']:.4f} | {r['p_value']:.2g} "
                f"| {'yes' if r['beats_chance'] else 'no'} |"
            )
    return "\n".join(lines)


def direct_table_of_models(models: dict[str, dict]) -> str | None:
    """`direct_table` of a benchmark's models ({label: result}) that ran the direct model; None if none did."""
    families = {label: {"direct": m["direct"]} for label, m in models.items() if m.get("direct")}
    return direct_table({"families": families}) if families else None


__all__ = [
    "F5_DEFAULTS",
    "REFERENCE",
    "beats_chance",
    "direct_table",
    "direct_table_of_models",
    "f5_pairs",
    "f5_settings",
    "reference_settings",
    "run_f5",
    "run_family",
]
