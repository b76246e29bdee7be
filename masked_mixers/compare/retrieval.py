"""The retrieval task of `compare`: every trained language model as a text embedder, side by side.

Once compare has trained its models as causal language models, `run_retrieval` builds
(query, passage) pairs from documents none of them trained on (`heldout_documents`), splits them
with a seed, and runs `retrieval.benchmark_models` on every model's saved directory, with BM25
on the same pairs and the same sampled candidates. The pairs are saved beside the report
(retrieval-pairs/, readable by `masked-mixers retrieve --pairs`), the top-1 curve goes to
retrieval.png, the tables to report.md (`render_retrieval`) and every number to results.json.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..core.errors import UserError
from ..retrieval.benchmark import benchmark_models, markdown_table, plot_benchmark
from ..retrieval.corpus import load_documents
from ..retrieval.f5 import direct_table_of_models
from ..retrieval.pairs import build_pairs, save_splits, split_pairs
from ..retrieval.settings import METHODS, PAIR_KINDS, POSITIONS
from ..training.tasks import CAUSAL_LM
from .config import CompareConfig

PLOT = "retrieval.png"
PAIRS_DIR = "retrieval-pairs"
METRICS = {"top1": "top-1 accuracy", "top10": "top-10 accuracy", "mrr": "mean reciprocal rank"}


def check_retrieval(config: CompareConfig, model_task: str = CAUSAL_LM) -> None:
    """Reject a bad `retrieval` section before any model trains."""
    task, data = config.retrieval, config.data
    if not task.enabled:
        return
    if model_task != CAUSAL_LM:
        raise UserError(
            f"retrieval.enabled: retrieval embeds text with language models, but these models' task is {model_task}"
        )
    if task.kind not in PAIR_KINDS:
        raise UserError(f"retrieval.kind: unknown value {task.kind!r} (choose from {', '.join(PAIR_KINDS)})")
    unknown = [m for m in task.methods if m not in METHODS]
    if unknown or not task.methods:
        raise UserError(f"retrieval.methods: {unknown or 'empty list'} (choose from {', '.join(METHODS)})")
    if task.position not in POSITIONS:
        raise UserError(f"retrieval.position: unknown value {task.position!r} (choose from {', '.join(POSITIONS)})")
    if any(n < 2 for n in [*(task.candidates or []), *task.direct_candidates]):
        raise UserError("retrieval.candidates / direct_candidates: every number of candidates must be at least 2")
    if task.num_documents < 2:
        raise UserError(f"retrieval.num_documents: need at least 2, got {task.num_documents}")
    if task.source is None and data.eval_source is None and data.max_documents is None:
        raise UserError(
            "retrieval.source: unset, and the models train on all of data.source; give retrieval.source, "
            "data.eval_source or data.max_documents so that pairs come from held-out documents"
        )


def heldout_documents(config: CompareConfig) -> tuple[list[str], dict]:
    """Documents for pairs, and where they came from (source, split, index of the first).

    retrieval.source when given; else data.eval_source (never trained on); else the documents of
    data.source after the first data.max_documents, the ones the models trained on.
    """
    task, data = config.retrieval, config.data
    if task.source is not None:
        source, split, first = task.source, data.split, 0
    elif data.eval_source is not None:
        source, split, first = data.eval_source, data.eval_split, 0
    else:
        source, split, first = data.source, data.split, data.max_documents
    documents = load_documents(
        source,
        split=split,
        text_field=data.text_field,
        lowercase=data.lowercase,
        max_documents=first + task.num_documents,
    )
    documents = documents[first:]
    if len(documents) < 2:
        raise UserError(
            f"retrieval: {source} has {len(documents)} documents after the first {first} (those the models trained "
            "on); pairs need more"
        )
    origin = {"source": source, "split": split, "first_document": first, "num_documents": len(documents)}
    if task.include_training_documents:
        trained = load_documents(
            data.source,
            split=data.split,
            text_field=data.text_field,
            lowercase=data.lowercase,
            max_documents=data.max_documents,
        )
        documents = list(trained) + documents
        origin.update(training_documents=len(trained), training_source=data.source, num_documents=len(documents))
    return documents, origin


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def run_retrieval(config: CompareConfig, model_dirs: dict[str, str], output_dir: Path, progress: bool = True) -> dict:
    """Pairs from held-out documents, then every model of `model_dirs` (label -> directory) and BM25."""
    task = config.retrieval
    documents, origin = heldout_documents(config)
    pairs = build_pairs(documents, task.kind, seed=task.seed, **task.pair_options())
    if len(pairs) < 4:
        raise UserError(
            f"retrieval: only {len(pairs)} {task.kind} pairs from {len(documents)} documents; raise "
            "retrieval.num_documents"
        )
    splits = split_pairs(pairs, task.test_fraction, task.seed, task.max_test)
    save_splits(output_dir / PAIRS_DIR, splits)
    print(
        f"[compare] retrieval: {len(splits.train)} train / {len(splits.test)} test {task.kind} pairs, "
        f"{len(model_dirs)} models + BM25",
        flush=True,
    )
    result = benchmark_models(model_dirs, splits, task, device=_device(), progress=progress)
    plot_benchmark(result, output_dir / PLOT)
    return {
        "pairs": {**origin, "kind": task.kind, "num_pairs": len(pairs), "saved_to": PAIRS_DIR},
        **result,
        "plot": PLOT,
    }


def _infonce_losses(retrieval: dict) -> list[str]:
    return [
        f"- {label}: InfoNCE training loss {m['infonce_loss']['first']:.3f} -> {m['infonce_loss']['last']:.3f}"
        for label, m in retrieval["models"].items()
        if "infonce_loss" in m
    ]


def _direct_section(retrieval: dict) -> list[str]:
    """The direct model as the paper reports it: train and test CE and top-1 per n, chance and the binomial test."""
    table = direct_table_of_models(retrieval["models"])
    return ["", "### Direct retrieval model (train and test cross entropy, chance ln n)", "", table] if table else []


def render_retrieval(retrieval: dict | None) -> str:
    """The report's retrieval section (empty when the task was off)."""
    if not retrieval:
        return ""
    p = retrieval["pairs"]
    trained = p.get("training_documents", 0)
    last = p["first_document"] + p["num_documents"] - trained - 1
    also = f" and the {trained} documents the models trained on" if trained else ""
    lines = [
        "## Retrieval",
        "",
        f"{p['num_pairs']} {p['kind']} pairs from held-out documents {p['first_document']}..{last} of "
        f"{p['source']}{also} "
        f"({retrieval['num_train']} train, {retrieval['num_test']} test; seed {retrieval['seed']}; saved in "
        f"{p['saved_to']}/). "
        "Each test query ranks its own passage among n candidates (itself and n - 1 other test passages, the same draw "
        "for every column). cosine: the language model's embedding as trained; infonce: after InfoNCE fine-tuning on "
        "the "
        "train pairs; direct: the paper's retrieval mixer on frozen embeddings, at its own n; bm25: lexical baseline.",
    ]
    if p["kind"] == "keywords":
        lines += [
            "",
            "Keyword pairs: the positive is the one passage certain to lack the query's words, so BM25 falls below "
            "chance.",
        ]
    for metric, title in METRICS.items():
        lines += ["", f"### {title}", "", markdown_table(retrieval, metric)]
    lines += _direct_section(retrieval)
    lines += ["", *_infonce_losses(retrieval), "", f"![{METRICS['top1']} vs candidates]({retrieval['plot']})", ""]
    return "\n".join(lines) + "\n"
