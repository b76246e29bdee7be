"""Training through Hugging Face's Trainer, so one code path serves a laptop, `torchrun` and
`accelerate launch` (multi-GPU, multi-node), with checkpoints, resume and bf16 autocast.

What we add on top of the Trainer is bookkeeping a comparison needs: a metrics JSONL (one line
per log/eval event, with wall-clock time and tokens seen), a wall-clock budget, peak memory, and
a final evaluation that reports bits per byte. The run config is saved beside the model.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from .callbacks import MetricsCallback, TimeBudgetCallback
from .config import RunConfig
from .configfile import save_yaml
from .errors import UserError
from .evaluation import evaluate
from .factory import ParameterCount, build_model, count_parameters, family
from .files import atomic_write_json
from .memory import PeakMemory
from .objectives import check_objective, data_collator, objective_config, prepare_model
from .tasks import model_task, trainer_metric_hooks
from .rundir import METRICS, RUN_CONFIG, STAGING_DIR, SUMMARY
from .trainer import RobustTrainer


@dataclass
class TrainResult:
    """What a finished run leaves behind, in memory (the same numbers are in output_dir)."""

    output_dir: Path
    model: PreTrainedModel
    parameters: ParameterCount
    history: list[dict[str, Any]] = field(default_factory=list)
    eval_metrics: dict[str, float] = field(default_factory=dict)
    train_loss: float | None = None
    steps: int = 0
    tokens_seen: int = 0
    train_seconds: float = 0.0
    tokens_per_second: float = 0.0
    peak_memory_bytes: int | None = None
    stopped_by: str = "max_steps"
    skipped_steps: list[int] = field(default_factory=list)  # non-finite losses dropped (train.on_nonfinite=skip)


def _precision(name: str) -> dict[str, bool]:
    """Trainer precision flags: bf16 autocast where the hardware supports it ("auto": CUDA only)."""
    cuda_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if name == "auto":
        return {"bf16": cuda_bf16}
    if name == "fp32":
        return {}
    if name == "bf16":
        return {"bf16": True}
    if name == "fp16":
        if not torch.cuda.is_available():
            raise UserError("train.precision: fp16 needs a CUDA device; use bf16 or fp32 on this machine")
        return {"fp16": True}
    raise UserError(f"train.precision: unknown value {name!r} (auto, fp32, bf16, fp16)")


def _fsdp(enabled: bool) -> bool | None:
    """Accelerate shards only across accelerator devices; on CPU it would silently run plain DDP."""
    if enabled and not torch.cuda.is_available():
        raise UserError("train.fsdp: FSDP needs CUDA devices; on CPU leave it false (processes then use plain data parallelism)")
    return True if enabled else None


def training_arguments(run: RunConfig, has_eval: bool) -> TrainingArguments:
    t = run.train
    report_to = [r for r in t.report_to if r != "jsonl"]
    return TrainingArguments(
        output_dir=t.output_dir,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.eval_batch_size or t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_steps,
        weight_decay=t.weight_decay,
        adam_beta1=t.adam_beta1,
        adam_beta2=t.adam_beta2,
        max_grad_norm=t.max_grad_norm,
        eval_strategy="steps" if has_eval and t.eval_steps else "no",
        eval_steps=t.eval_steps or None,
        save_strategy="steps" if t.save_steps else "no",
        save_steps=t.save_steps or 500,
        save_total_limit=t.save_total_limit,
        logging_steps=t.logging_steps,
        seed=t.seed,
        dataloader_num_workers=t.num_workers,
        report_to=report_to or "none",
        torch_compile=t.torch_compile,
        fsdp=_fsdp(t.fsdp),
        fsdp_config=t.fsdp_config or None,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=False,
        **_precision(t.precision),
    )


def _eval_subset(dataset, run: RunConfig):
    if dataset is None or not run.train.max_eval_batches:
        return dataset
    n = min(len(dataset), run.train.max_eval_batches * (run.train.eval_batch_size or run.train.batch_size))
    return dataset.select(range(n))


def _check_completion_layout(run: RunConfig) -> None:
    """One-step completion splits every example at L/2 by column: left padding would move the text."""
    if run.train.objective == "completion" and run.data.padding_side == "left" and not run.data.packing:
        raise UserError("data.padding_side: completion splits examples at column L/2; use packing or right padding, not left")


def _resume_checkpoint(output_dir: str, resume: bool) -> str | None:
    if not os.path.isdir(output_dir):
        return None
    shutil.rmtree(os.path.join(output_dir, STAGING_DIR), ignore_errors=True)  # a save cut short by a kill
    return get_last_checkpoint(output_dir) if resume else None


def train(run: RunConfig, prepared=None, model: PreTrainedModel | None = None, callbacks=(), resume: bool = True) -> TrainResult:
    """Train `run.model` (or the given `model`) on `prepared` (or on `run.data`, prepared here).

    resume: continue from the newest checkpoint in run.train.output_dir when there is one.
    callbacks: extra TrainerCallbacks (tests use one to interrupt a run).
    """
    check_objective(run.train, family(run.model.family))  # before any data work
    _check_completion_layout(run)
    args = training_arguments(run, has_eval=prepared is None or prepared.eval is not None)
    if prepared is None:
        from .data import prepare_data

        # one process per node tokenizes; the others then read its cache instead of racing it
        with args.main_process_first(desc="preparing data"):
            prepared = prepare_data(run.data, run.model.seq_len)
    tokenizer = prepared.tokenizer
    tokenizer.padding_side = run.data.padding_side  # saved with the model: generation and embeddings pad the same way
    tokenizer.init_kwargs["padding_side"] = run.data.padding_side  # what save_pretrained writes (transformers 5 ignores the attribute)
    if model is None:
        set_seed(run.train.seed)  # the initial weights depend on the run's seed, like everything after
        model, _ = build_model(
            run.model, len(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id
        )
    if objective_config(model) is None:
        prepare_model(model, run.train)  # the objective's parameters (MTP heads, mask vector), recorded in model.config
    out = Path(run.train.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if args.process_index == 0:
        save_yaml(run, out / RUN_CONFIG)
    world = max(args.world_size, 1)
    tokens_per_step = run.train.batch_size * run.train.gradient_accumulation_steps * world * run.model.seq_len
    metrics = MetricsCallback(out / METRICS, tokens_per_step)
    extra = [metrics, *callbacks]
    budget = None
    if run.train.max_seconds:
        budget = TimeBudgetCallback(run.train.max_seconds, metrics)
        extra.append(budget)
    trainer = RobustTrainer(
        on_nonfinite=run.train.on_nonfinite,
        model=model,
        args=args,
        train_dataset=prepared.train,
        eval_dataset=_eval_subset(prepared.eval, run),
        data_collator=data_collator(run.train),  # completion: labels of the first half masked (objectives/)
        processing_class=tokenizer,
        callbacks=extra,
        **trainer_metric_hooks(model_task(model)),
    )
    checkpoint = _resume_checkpoint(run.train.output_dir, resume)
    with PeakMemory() as peak:
        output = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(str(out))  # model (safetensors) + tokenizer, for AutoModelForCausalLM/AutoTokenizer
    return _finish(run, trainer, output, metrics, budget, peak, prepared, out)


def _finish(run, trainer, output, metrics, budget, peak, prepared, out) -> TrainResult:
    model = trainer.model
    steps = trainer.state.global_step
    seconds = metrics.elapsed()
    result = TrainResult(
        output_dir=out,
        model=model,
        parameters=count_parameters(model),
        history=metrics.history,
        train_loss=output.training_loss,
        steps=steps,
        tokens_seen=steps * metrics.tokens_per_step,
        train_seconds=seconds,
        tokens_per_second=steps * metrics.tokens_per_step / seconds if seconds else 0.0,
        peak_memory_bytes=peak.bytes,
        stopped_by="max_seconds" if budget is not None and budget.triggered else "max_steps",
        skipped_steps=[int(r["skipped_step"]) for r in metrics.history if "skipped_step" in r],
    )
    if prepared.eval is not None and trainer.is_world_process_zero():
        result.eval_metrics = evaluate(
            model, _eval_subset(prepared.eval, run), batch_size=run.train.eval_batch_size or run.train.batch_size
        )
    if trainer.is_world_process_zero():
        summary = {k: v for k, v in vars(result).items() if k not in ("model", "history", "output_dir", "parameters")}
        summary["parameters"] = vars(result.parameters)
        summary["task"] = model_task(model)
        atomic_write_json(out / SUMMARY, summary)
    return result
