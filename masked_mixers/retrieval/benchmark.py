"""Retrieval benchmark: the same pipeline on several language models, BM25 alongside.

For each language model, on the same pairs and the same sampled candidates:

- "cosine": its embeddings as they come from causal language modeling, ranked by cosine;
- "direct": the paper's direct-embedding retrieval model trained on its frozen train-pair
  embeddings, evaluated at each of `direct_candidates`;
- "infonce": the model fine-tuned with InfoNCE on the train pairs, then ranked by cosine
  (this changes the loaded model, never the files it came from).

The result is a plain dict (JSON-ready) of top-1, top-10 and MRR against the number of
candidates, for a table, a plot (`plot_benchmark`) and the `compare` command.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from ..core.errors import UserError
from ..core.files import save_figure
from ..runs.factory import count_parameters
from ..runs.layout import SCORE, input_side
from .bm25 import bm25_scores
from .direct import fit_direct
from .embedding import embed_texts, load_language_model
from .infonce import finetune_infonce
from .metrics import candidate_counts, cosine_scores, metrics_vs_candidates
from .pairs import PairSplits, load_splits, passage_index
from .settings import METHODS, RetrievalSettings


def embed_splits(
    model, tokenizer, splits: PairSplits, settings: RetrievalSettings, progress: bool = True, train: bool = True
) -> dict:
    """Embeddings of the test (and train) split, each (queries (N, d), distinct passages (D, d), targets (N,)).

    A passage shared by several queries (queries_per_document > 1) is embedded once; computed once
    per language model, they serve every method that keeps it frozen (cosine, direct).
    """
    kw = {
        "position": settings.position,
        "batch_size": settings.batch_size,
        "max_length": settings.max_length,
        "progress": progress,
    }
    out = {}
    for name, pairs in (("test", splits.test), ("train", splits.train)) if train else (("test", splits.test),):
        passages, targets = passage_index(pairs)
        out[name] = (
            embed_texts(model, tokenizer, [p.query for p in pairs], desc=f"embed {name} queries", **kw),
            embed_texts(model, tokenizer, passages, desc=f"embed {name} passages", **kw),
            torch.tensor(targets),
        )
    return out


def benchmark_model(
    model_dir: str | Path,
    splits: PairSplits,
    counts: list[int],
    settings: RetrievalSettings | None = None,
    device: str = "cpu",
    progress: bool = True,
    trust_remote_code: bool = False,
) -> dict:
    """Every method of `settings.methods` on one language model (see the module docstring)."""
    s = settings or RetrievalSettings()
    methods, seed = tuple(s.methods), s.seed
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise UserError(f"unknown retrieval methods {sorted(unknown)} (choose from {', '.join(METHODS)})")
    model, tokenizer = load_language_model(model_dir, device, trust_remote_code=trust_remote_code)
    result = {
        "model_dir": str(model_dir),
        "model_type": model.config.model_type,
        "parameters": count_parameters(model).total,
    }
    result["padding_side"] = input_side(model, tokenizer, SCORE)
    embedded = embed_splits(model, tokenizer, splits, s, progress, train="direct" in methods)
    test_q, test_p, test_t = embedded["test"]
    if "cosine" in methods:
        result["cosine"] = metrics_vs_candidates(cosine_scores(test_q, test_p), counts, seed, test_t)
    if "direct" in methods:
        result["direct"] = fit_direct(embedded["train"], embedded["test"], s, device)
    if "infonce" in methods:
        result["infonce"], result["infonce_loss"] = infonce_then_cosine(
            model, tokenizer, splits, s, counts, test_t, progress
        )
    return result


def infonce_then_cosine(
    model, tokenizer, splits: PairSplits, s: RetrievalSettings, counts: list[int], targets, progress: bool = True
) -> tuple[list[dict], dict]:
    """Fine-tune `model` in place with InfoNCE on the train pairs, re-embed the test pairs and rank them by cosine.

    Returns (metric rows per number of candidates, {"first", "last": the InfoNCE loss, "variant"}).
    """
    history = finetune_infonce(
        model,
        tokenizer,
        splits.train,
        position=s.position,
        steps=s.infonce_steps,
        batch_size=s.infonce_batch_size,
        learning_rate=s.infonce_learning_rate,
        temperature=s.temperature,
        max_length=s.max_length,
        seed=s.seed,
        progress=progress,
        variant=s.infonce_variant,
        candidates=s.infonce_candidates,
    )
    tuned_q, tuned_p, _ = embed_splits(model, tokenizer, splits, s, progress, train=False)["test"]
    rows = metrics_vs_candidates(cosine_scores(tuned_q, tuned_p), counts, s.seed, targets)
    return rows, {"first": history[0]["loss"], "last": history[-1]["loss"], "variant": s.infonce_variant}


def benchmark_models(
    model_dirs: dict[str, str | Path],
    pairs: PairSplits | str | Path,
    settings: RetrievalSettings | None = None,
    device: str = "cpu",
    progress: bool = True,
    trust_remote_code: bool = False,
    **overrides,
) -> dict:
    """Accuracy against the number of candidates for every model of `model_dirs` and BM25.

    model_dirs: label -> language model directory (any number, any causal LM family).
    pairs: PairSplits or a directory written by the `pairs` command. settings: the benchmark's
    RetrievalSettings (methods, candidates, position, ...; candidates default to 32, 64, ... up
    to the test pairs, at most 8192); overrides: fields of it to replace, e.g. methods=("cosine",).
    """
    settings = dataclasses.replace(settings or RetrievalSettings(), **overrides)
    splits = pairs if isinstance(pairs, PairSplits) else load_splits(pairs)
    passages, targets = passage_index(splits.test)
    counts = settings.candidates or candidate_counts(len(passages))
    if not counts or max(counts) > len(passages):
        raise UserError(f"{len(passages)} test passages cannot fill {max(counts or [32])} candidates")
    lexical = bm25_scores([p.query for p in splits.test], passages)
    return {
        "num_train": len(splits.train),
        "num_test": len(splits.test),
        "candidates": counts,
        "seed": settings.seed,
        "bm25": metrics_vs_candidates(lexical, counts, settings.seed, torch.tensor(targets)),
        "models": {
            label: benchmark_model(path, splits, counts, settings, device, progress, trust_remote_code)
            for label, path in model_dirs.items()
        },
    }


def retrieval_benchmark(
    mixer_dir: str | Path,
    transformer_dir: str | Path,
    pairs: PairSplits | str | Path,
    settings: RetrievalSettings | None = None,
    **kwargs,
) -> dict:
    """`benchmark_models` on one masked mixer ("mixer") and one transformer ("transformer")."""
    return benchmark_models({"mixer": mixer_dir, "transformer": transformer_dir}, pairs, settings, **kwargs)


def _series(result: dict):
    """(label, rows) for every curve of a benchmark result, BM25 first."""
    yield "bm25", result["bm25"]
    for name, model in result["models"].items():
        for method in METHODS:
            if model.get(method):
                yield f"{name} {method}", model[method]


def _grid(result: dict, metric: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Column labels and, per number of candidates, the `metric` of every model and method."""
    series = list(_series(result))
    counts = sorted({row["candidates"] for _, rows in series for row in rows})
    rows = []
    for n in counts:
        values = [next((r[metric] for r in rows_ if r["candidates"] == n), None) for _, rows_ in series]
        rows.append((n, ["-" if v is None else f"{v:.3f}" for v in values]))
    return [label for label, _ in series], rows


def format_table(result: dict, metric: str = "top1") -> str:
    """A plain-text table: one row per number of candidates, one column per model and method."""
    labels, rows = _grid(result, metric)
    width = max(12, *(len(label) + 2 for label in labels))
    lines = [f"{metric} by number of candidates".ljust(28) + "".join(label.rjust(width) for label in labels)]
    lines += [f"{n:<28d}" + "".join(cell.rjust(width) for cell in cells) for n, cells in rows]
    return "\n".join(lines)


def chance_level(metric: str, n: int) -> float:
    """The expected `metric` of a random ranking of n candidates."""
    return {"top1": 1 / n, "top10": min(10, n) / n, "mrr": sum(1 / k for k in range(1, n + 1)) / n}[metric]


def markdown_table(result: dict, metric: str = "top1") -> str:
    """The same table as `format_table`, in Markdown, with the chance level of each row."""
    labels, rows = _grid(result, metric)
    lines = ["| candidates | chance | " + " | ".join(labels) + " |", "|---" * (len(labels) + 2) + "|"]
    lines += [f"| {n} | {chance_level(metric, n):.3f} | " + " | ".join(cells) + " |" for n, cells in rows]
    return "\n".join(lines)


def plot_benchmark(result: dict, path: str | Path, metric: str = "top1") -> None:
    """Plot `metric` against the number of candidates (log scale), written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for label, rows in _series(result):
        xs, ys = [r["candidates"] for r in rows], [r[metric] for r in rows]
        style = "--" if label == "bm25" else ":" if label.endswith("direct") else "-"
        ax.plot(xs, ys, style, marker="o", label=label)
    counts = result["candidates"]
    ax.plot(counts, [1.0 / n for n in counts], color="grey", linewidth=0.8, label="chance")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("number of candidate passages")
    ax.set_ylabel(metric)
    ax.set_ylim(0, 1)
    ax.set_title(f"retrieval on {result['num_test']} test pairs")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: curves span the whole axis
    fig.tight_layout()
    save_figure(fig, path)
