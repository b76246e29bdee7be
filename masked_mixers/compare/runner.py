"""Train every model of a comparison on the same tokens for the same budget, then report.

Data is prepared once per distinct seq_len and shared; each model trains through
`masked_mixers.training.train.train` (HF Trainer) into OUTPUT_DIR/models/<label>, is evaluated on the
same held-out examples for the comparison's task (tasks.py: one task per comparison, set by the
families), and generates text for the same prompts (language models) or rebuilds the same
held-out examples (autoencoders). With `retrieval.enabled`, the
trained language models are then benchmarked as text embedders (compare/retrieval.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..core.errors import UserError
from ..data.examples import first_examples
from ..models import FAMILIES
from ..runs.config import ModelSpec, RunConfig, TrainConfig
from ..runs.factory import family_task
from ..training.tasks import AUTOENCODE
from .config import CompareConfig
from .matching import match_models, measure_training_memory
from .plots import PLOTS, eval_curve, plot_curves
from .report import environment, write_report
from .retrieval import PAIRS_DIR, PLOT, check_retrieval, run_retrieval
from .samples import generate_samples, reconstruction_samples

SIZE_MATCHING = ("identical", "memory")


@dataclass
class CompareResult:
    output_dir: Path
    report: Path
    rows: list[dict]


def _task(models: list[ModelSpec]) -> str:
    """The one task all models share; a mix of tasks names the first model that breaks it."""
    tasks = [family_task(m, f"models[{i}].family") for i, m in enumerate(models)]
    for i, task in enumerate(tasks):
        if task != tasks[0]:
            raise UserError(
                f"models[{i}].family: {models[i].family!r} has task {task} but models[0] ({models[0].family!r}) "
                f"has task {tasks[0]}; a comparison trains one task, so split it into two configs"
            )
    return tasks[0]


def _check(config: CompareConfig) -> str:
    """Validate the config before any work; returns the comparison's task."""
    if config.size_matching not in SIZE_MATCHING:
        raise UserError(
            f"size_matching: unknown value {config.size_matching!r} (choose from {', '.join(SIZE_MATCHING)})"
        )
    if not config.models:
        raise UserError("models: the list is empty; give at least one model")
    labels = [m.label for m in config.models]
    for key in config.per_family:
        if key not in FAMILIES and key not in labels:
            raise UserError(f"per_family: key {key!r} names no family ({', '.join(FAMILIES)}) and no model label")
    if config.train.max_steps <= 0 and not config.train.max_seconds:
        raise UserError("train: set a budget, max_steps > 0, max_seconds, max_compute_seconds or max_flops")
    _check_names(config.models)
    task = _task(config.models)
    check_retrieval(config, task)
    return task


def _check_names(models: list[ModelSpec]) -> None:
    """Labels name the models' folders (OUTPUT_DIR/models/LABEL): no path may climb out of models/."""
    for i, model in enumerate(models):
        label = model.label
        if not label or label.startswith(".") or any(c in label for c in "/\\"):
            raise UserError(
                f"models[{i}].name: {label!r} cannot name a folder; use letters, digits, '-' and '_' (no '/', '\\', "
                "'..', no leading '.')"
            )


def _unique_labels(models: list[ModelSpec]) -> None:
    _check_names(models)
    labels = [m.label for m in models]
    for i, label in enumerate(labels):
        if label in labels[:i]:
            raise UserError(f"models[{i}]: label {label!r} repeats an earlier model; give it a distinct `name`")


def claim_output(out: Path, *extra: str) -> None:
    """The compare folder holds only what compare writes (manifest.py): a folder of the user's is refused.

    extra: names a caller writes there too (reproduce's compare.yaml), recorded with compare's own.
    """
    from ..core.files import make_dir
    from ..runs import manifest

    names = ("models", "results.json", "report.md", *PLOTS, PLOT, PAIRS_DIR, *extra)
    if manifest.kind(out) is None and (out / "results.json").is_file() and (out / "models").is_dir():
        # a compare folder from before manifests: its entries are compare's when every name is one compare writes
        if all(entry.name in names for entry in out.iterdir()):
            manifest.record(out, *names, what="compare")
    manifest.check_destination(out, "compare", "--output-dir")
    make_dir(out)
    manifest.record(out, *names, what="compare")


def _train_config(config: CompareConfig, spec: ModelSpec, original_label: str, output_dir: Path) -> TrainConfig:
    """The shared train settings with this model's family (or label) overrides and its own folder."""
    overrides = config.per_family.get(original_label) or config.per_family.get(spec.family)
    changes = {k: v for k, v in vars(overrides).items() if v is not None} if overrides else {}
    folder = re.sub(r"[^A-Za-z0-9_.-]+", "_", spec.label)
    return replace(config.train, output_dir=str(output_dir / "models" / folder), **changes)


def _first_batch(prepared, batch_size: int) -> dict:
    return first_examples(prepared.train, batch_size)  # column -> (batch_size, seq_len) tensor


def _resolve_sizes(config: CompareConfig, prepared: dict, progress: bool) -> tuple[list[ModelSpec], list[dict]]:
    if config.size_matching == "identical":
        return list(config.models), []
    bf16 = config.train.precision == "bf16"

    def measure(spec: ModelSpec) -> int:
        data = prepared[spec.seq_len]
        batch = _first_batch(data, config.train.batch_size)
        return measure_training_memory(spec, batch, spec.vocab_size or len(data.tokenizer), config.matching.steps, bf16)

    models, matches = match_models(config.models, config.matching, measure, progress)
    return models, [
        {
            "label": m.spec.label,
            "hidden_size": m.spec.hidden_size,
            "peak_bytes": m.peak_bytes,
            "reference": m.reference,
            "reference_bytes": m.reference_bytes,
            "relative_gap": m.relative_gap,
            "measurements": m.measurements,
        }
        for m in matches
    ]


def _examples(task: str, result, prepared, spec: ModelSpec, config: CompareConfig) -> dict[str, list[dict]]:
    """The row's output examples: {"reconstructions": ...} for autoencoders, {"samples": ...} otherwise."""
    if task == AUTOENCODE:
        return {
            "reconstructions": reconstruction_samples(
                result.model, prepared.tokenizer, prepared.eval, config.report.reconstructions
            )
        }
    return {
        "samples": generate_samples(result.model, prepared.tokenizer, spec.seq_len, config.report, config.data.add_bos)
    }


def _row(spec: ModelSpec, train_cfg: TrainConfig, result, wall: float, examples: dict[str, list[dict]]) -> dict:
    ev = result.eval_metrics
    final = (
        {
            "step": result.steps,
            "elapsed_s": result.train_seconds,
            "tokens_seen": result.tokens_seen,
            "eval_loss": ev["loss"],
        }
        if ev
        else None
    )
    return {
        "label": spec.label,
        "family": spec.family,
        "hidden_size": spec.hidden_size,
        "num_hidden_layers": spec.num_hidden_layers,
        "seq_len": spec.seq_len,
        "parameters": result.parameters.total,
        "non_embedding_parameters": result.parameters.non_embedding,
        "learning_rate": train_cfg.learning_rate,
        "steps": result.steps,
        "tokens_seen": result.tokens_seen,
        "stopped_by": result.stopped_by,
        "train_loss": result.train_loss,
        "eval_loss": ev.get("loss"),
        "perplexity": ev.get("perplexity"),
        "bits_per_byte": ev.get("bits_per_byte"),
        "token_accuracy": ev.get("token_accuracy"),
        "objective": train_cfg.objective,
        "mtp_losses": [ev[k] for k in sorted(ev) if k.startswith("mtp_loss_")] or None,
        "exact_match": ev.get("exact_match"),
        "tokens_per_second": result.tokens_per_second,
        "peak_memory_mib": result.peak_memory_bytes / 2**20 if result.peak_memory_bytes is not None else None,
        "train_seconds": result.train_seconds,
        "cpu_seconds": result.cpu_seconds,
        "gpu_seconds": result.gpu_seconds,
        "compute_seconds": result.compute_seconds,
        "flops": result.flops,
        "flops_per_step": result.flops_per_step,
        "wall_seconds": wall,
        "output_dir": str(result.output_dir),
        "eval_curve": eval_curve(result.history, final),
        **examples,
    }


def _default_prepare():
    from ..data import prepare_data

    return prepare_data


def run_compare(
    config: CompareConfig, output_dir: str | Path, prepare: Callable | None = None, progress: bool = True
) -> CompareResult:
    """Prepare data per seq_len, size, train, evaluate and sample every model, and write the report.

    prepare: `prepare_data(data_config, seq_len)`; tests pass a small stand-in.
    """
    from ..training.train import _precision, train

    task = _check(config)
    prepare = prepare or _default_prepare()
    out = Path(output_dir).expanduser()
    claim_output(out)
    seq_lens = sorted({m.seq_len for m in config.models})
    prepared = {L: prepare(config.data, L) for L in seq_lens}  # once per distinct L, shared
    models, matches = _resolve_sizes(config, prepared, progress)
    _unique_labels(models)
    rows = []
    for i, (original, spec) in enumerate(zip(config.models, models), 1):
        train_cfg = _train_config(config, spec, original.label, out)
        print(
            f"[compare {i}/{len(models)}] training {spec.label} (lr {train_cfg.learning_rate:g}) -> "
            f"{train_cfg.output_dir}",
            flush=True,
        )
        start = time.perf_counter()
        result = train(RunConfig(model=spec, data=config.data, train=train_cfg), prepared[spec.seq_len], resume=False)
        wall = time.perf_counter() - start
        examples = _examples(task, result, prepared[spec.seq_len], spec, config)
        rows.append(_row(spec, train_cfg, result, wall, examples))
    completion = config.train.objective == "completion"  # its eval loss is the completion loss (objectives/)
    plot_curves(
        {r["label"]: r["eval_curve"] for r in rows},
        out,
        task,
        "eval completion loss (nats/token)" if completion else None,
    )
    # retrieval task: the trained models as embedders on held-out pairs (compare/retrieval.py)
    retrieval = (
        run_retrieval(config, {r["label"]: r["output_dir"] for r in rows}, out, progress)
        if config.retrieval.enabled
        else None
    )
    flags = _precision(config.train.precision)
    dtype = "bf16 autocast" if flags.get("bf16") else "fp16 autocast" if flags.get("fp16") else "fp32"
    report = write_report(out, config, task, rows, matches, environment(dtype), retrieval)
    return CompareResult(out, report, rows)
