"""Training through Hugging Face's Trainer, so one code path serves a laptop, `torchrun` and
`accelerate launch` (multi-GPU, multi-node), with checkpoints, resume and bf16 autocast.

What we add on top of the Trainer is bookkeeping a comparison needs: a metrics JSONL (one line
per log/eval event, with wall-clock, CPU and GPU time, tokens seen and training FLOPs), a wall-clock,
a compute-time (GPU or CPU time of the steps) and a training-FLOPs budget (budget.py), warmup as a
share of the run's own steps, peak memory, and a final evaluation that reports bits per byte. The
run config is saved beside the model.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from ..core.configfile import InvalidValue, save_yaml, validate
from ..core.errors import UserError
from ..core.files import atomic_write_json, check_output_dir
from ..core.progress import progress_hidden
from ..objectives import check_objective, data_collator, objective_config, prepare_model
from ..runs.checkpoints import newest_intact
from ..runs.config import RunConfig, check_loggers
from ..runs.factory import ParameterCount, build_model, check_model_size, count_parameters, family
from ..runs.layout import record_padding_side
from ..runs.rundir import (
    METRICS,
    RUN_CONFIG,
    STAGING_DIR,
    SUMMARY,
    changed_keys,
    claim_run,
    clear_run,
    locked,
    read_summary,
)
from .budget import check_countable, step_limit, tokens_per_step, training_flops_per_step, warmup_steps
from .callbacks import FinalEvaluationCallback, MetricsCallback, TimeBudgetCallback
from .distributed import any_process, check_fsdp, single_process_launch
from .evaluation import evaluate
from .memory import PeakMemory
from .tasks import model_task, trainer_metric_hooks
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
    tokens_seen: int = 0  # all processes together
    processes: int = 1  # the data-parallel processes that trained (torchrun, accelerate launch)
    train_seconds: float = 0.0  # wall-clock (clocks.py)
    cpu_seconds: float = 0.0  # CPU time of this process over the same span
    gpu_seconds: float | None = None  # CUDA time of the training steps; None without CUDA
    compute_seconds: float = 0.0  # what max_compute_seconds counts: gpu_seconds on CUDA, else CPU time of the steps
    flops: float | None = None  # analytic training FLOPs done: steps x flops_per_step (budget.py)
    flops_per_step: float | None = None  # None where the objective is not counted
    tokens_per_second: float = 0.0
    peak_memory_bytes: int | None = None
    # the limit that ended the run: max_steps | max_seconds | max_compute_seconds | max_flops
    stopped_by: str = "max_steps"
    skipped_steps: list[int] = field(default_factory=list)  # non-finite losses dropped (train.on_nonfinite=skip)
    already_finished: bool = False  # the output folder held this run, finished: nothing was trained or written


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


def _data_loading(num_workers: int | None) -> dict:
    """Keep a GPU fed: pinned host memory (asynchronous copies) and worker processes on CUDA."""
    cuda = torch.cuda.is_available()
    workers = (4 if cuda else 0) if num_workers is None else num_workers
    if workers < 0:
        raise UserError(f"train.num_workers: must be >= 0 (or null for automatic), got {workers}")
    return {
        "dataloader_num_workers": workers,
        "dataloader_pin_memory": cuda,
        "dataloader_persistent_workers": workers > 0,
    }


OPTIMIZERS = {
    "adamw": "adamw_torch",
    "adafactor": "adafactor",
    "sgd": "sgd",
}  # train.optimizer -> TrainingArguments.optim


def _optim(name: str) -> str:
    """TrainingArguments.optim for train.optimizer; AdamW is fused on CUDA (one kernel per step instead of a
    for-each)."""
    return "adamw_torch_fused" if name == "adamw" and torch.cuda.is_available() else OPTIMIZERS[name]


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
        **_data_loading(t.num_workers),
        logging_nan_inf_filter=t.on_nonfinite == "skip",  # the filter syncs every step; "stop" never logs a NaN
        report_to=report_to or "none",
        torch_compile=t.torch_compile,
        optim=_optim(t.optimizer),
        activation_checkpointing=t.gradient_checkpointing,  # transformers' new name for gradient checkpointing
        fsdp=True if t.fsdp else None,  # train() refuses it without CUDA (distributed.check_fsdp)
        fsdp_config=t.fsdp_config or None,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=progress_hidden(),  # --no-progress (options.hide_progress)
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
        raise UserError(
            "data.padding_side: completion splits examples at column L/2; use packing or right padding, not left"
        )


def _resume_checkpoint(output_dir: str, resume: bool, main: bool = True) -> str | None:
    """The newest intact checkpoint to resume from (checkpoints.py); damaged newer ones are named on
    stderr (by process 0) and skipped, never deleted."""
    if not os.path.isdir(output_dir):
        return None
    shutil.rmtree(os.path.join(output_dir, STAGING_DIR), ignore_errors=True)  # a save cut short by a kill
    return newest_intact(output_dir, warn=_warn if main else None) if resume else None


def _warn(line: str) -> None:
    print(f"masked-mixers train: warning: {line}", file=sys.stderr, flush=True)


def _checkpoint_step(checkpoint: str | None) -> int:
    return int(checkpoint.rsplit("-", 1)[1]) if checkpoint else 0


def _is_finished(summary: dict | None, run: RunConfig) -> bool:
    """Done: the summary says max_steps were trained, or the FLOPs budget was (max_flops cannot change
    on resume: not a RESUMABLE key), or a time budget (wall clock, compute) was spent and not raised since.
    (A run stopped otherwise, e.g. by a callback, resumes from its newest checkpoint.)"""
    if summary is None:
        return False
    if summary.get("steps", 0) >= run.train.max_steps or summary.get("stopped_by") == "max_flops":
        return True
    for key, spent in (("max_seconds", "train_seconds"), ("max_compute_seconds", "compute_seconds")):
        limit = getattr(run.train, key)
        raised = limit is None or limit > summary.get(spent, 0.0)
        if summary.get("stopped_by") == key and not raised:
            return True
    return False


def _check_previous_run(run: RunConfig, out: Path, resume: bool, main: bool) -> dict | None:
    """Before any data is read: the earlier run in `out` is cleared (--no-resume, process 0), or must
    have the same config; returns its summary when it already finished (nothing is then changed)."""
    if not resume:
        if main:
            clear_run(out)
        return None
    summary = read_summary(out)
    changed = changed_keys(out, run)
    if changed and (
        summary is not None or (out.is_dir() and get_last_checkpoint(str(out)))
    ):  # nothing to resume: no conflict
        raise UserError(
            f"{out}: the run there was trained with a different config ({', '.join(changed)} changed); "
            "use the same values, another train.output_dir, or --no-resume to start over"
        )
    return summary if _is_finished(summary, run) else None


def _finished_result(out: Path, summary: dict) -> TrainResult:
    """The TrainResult of a run that had already finished, read back from its folder."""
    from ..runs.rundir import load_run, read_metrics

    model, _ = load_run(out)
    fields = (
        "eval_metrics",
        "train_loss",
        "steps",
        "tokens_seen",
        "processes",
        "train_seconds",
        "cpu_seconds",
        "gpu_seconds",
        "compute_seconds",
        "flops",
        "flops_per_step",
        "tokens_per_second",
        "peak_memory_bytes",
        "stopped_by",
        "skipped_steps",
    )
    result = TrainResult(
        output_dir=out,
        model=model,
        parameters=count_parameters(model),
        history=read_metrics(out),
        already_finished=True,
    )
    for key in fields:
        if key in summary:
            setattr(result, key, summary[key])
    return result


def _train_loss(history: list[dict], output, resumed_at: int, steps: int) -> float | None:
    """Mean training loss over all steps: the Trainer's own covers only the steps since a resume,
    so the logged interval means before the checkpoint (each over the steps since the last log) weigh in."""
    if not resumed_at or not steps:
        return output.training_loss
    logged, previous, total = 0, 0, 0.0
    for record in history:
        if "loss" in record and record["step"] <= resumed_at:
            total += record["loss"] * (record["step"] - previous)
            logged, previous = record["step"], record["step"]
    if logged != resumed_at:
        return output.training_loss  # the checkpoint falls between logs: no exact earlier mean
    return (total + output.training_loss * (steps - resumed_at)) / steps


def train(
    run: RunConfig, prepared=None, model: PreTrainedModel | None = None, callbacks=(), resume: bool = True
) -> TrainResult:
    """Train `run.model` (or the given `model`) on `prepared` (or on `run.data`, prepared here).

    resume: continue from the newest checkpoint in run.train.output_dir when there is one; a run
      that already finished is returned as it is, and a changed config is refused. False clears
      the earlier run's checkpoints, metrics and model first.
    callbacks: extra TrainerCallbacks (tests use one to interrupt a run).
    Everything that can be checked is checked before data is read: the config's values, the
    output folder, the model's size, the folder's lock and the earlier run in it.
    """
    validate(run)
    try:
        check_loggers(run.train.report_to, installed=True)
    except InvalidValue as err:
        raise err.located("config", "train") from None
    check_objective(run.train, family(run.model.family))  # before any data work
    check_countable(run.model, run.train)
    _check_completion_layout(run)
    check_fsdp(run.train)
    args = training_arguments(run, has_eval=prepared is None or prepared.eval is not None)
    if model is None and run.train.init_from:
        model, run = _init_from(run)
    out = Path(run.train.output_dir)
    check_output_dir(out)
    if model is None:
        check_model_size(
            run.model,
            run.model.vocab_size or (len(prepared.tokenizer) if prepared is not None else run.data.vocab_size),
        )
    launch = single_process_launch()
    if launch:
        _warn(launch)
    if args.process_index == 0:
        claim_run(out)  # a folder holding anything this package did not write is refused, never cleared
    with locked(out, enabled=args.process_index == 0):
        finished = _check_previous_run(run, out, resume, main=args.process_index == 0)
        if finished is not None:
            return _finished_result(out, finished)
        return _train(run, args, out, prepared, model, callbacks, resume)


def _train(run: RunConfig, args, out: Path, prepared, model, callbacks, resume: bool) -> TrainResult:
    if prepared is None:
        from ..data import prepare_data

        # one process per node tokenizes; the others then read its cache instead of racing it
        with args.main_process_first(desc="preparing data"):
            prepared = prepare_data(run.data, run.model.seq_len)
    tokenizer = prepared.tokenizer
    # L, where tokenizers' users (pipelines, lm-eval, sentence-transformers) look for the longest input
    tokenizer.model_max_length = tokenizer.init_kwargs["model_max_length"] = run.model.seq_len
    if model is None:
        set_seed(run.train.seed)  # the initial weights depend on the run's seed, like everything after
        model, _ = build_model(
            run.model,
            len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    record_padding_side(
        model, tokenizer, run.data.padding_side
    )  # saved with the model: generation and embeddings pad the same way
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        raise UserError(
            f"data.tokenizer: {len(tokenizer)} tokens, "
            f"more than the model's vocabulary ({model.get_input_embeddings().num_embeddings})"
        )
    if run.train.gradient_checkpointing and not model.supports_gradient_checkpointing:
        raise UserError(
            f"train.gradient_checkpointing: family {run.model.family!r} does not support it; set it to false"
        )
    if objective_config(model) is None:
        prepare_model(model, run.train)  # the objective's parameters (MTP heads, mask vector), recorded in model.config
    world = max(args.world_size, 1)
    flops_per_step = training_flops_per_step(run.model, run.train, model.get_input_embeddings().num_embeddings, world)
    limit = step_limit(run.model, run.train, flops_per_step)
    args.max_steps = limit.max_steps  # max_flops as a step limit: the schedule ends there, a resume stops there
    args.warmup_steps = warmup_steps(run.train, limit.max_steps)  # warmup_ratio: a share of this model's own steps
    if args.process_index == 0:
        save_yaml(run, out / RUN_CONFIG)
    metrics = MetricsCallback(out / METRICS, tokens_per_step(run.model, run.train, world), flops_per_step)
    extra = [metrics, *callbacks]
    budgets = _time_budgets(run.train, metrics)
    extra.extend(budgets.values())
    extra.append(FinalEvaluationCallback())  # after the budgets: _finish evaluates the final model once
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
    checkpoint = _resume_checkpoint(run.train.output_dir, resume, main=args.process_index == 0)
    with PeakMemory() as peak:
        if _checkpoint_step(checkpoint) >= limit.max_steps:  # killed after the last checkpoint: train no extra step
            output = _restore_only(trainer, checkpoint, metrics)
        else:
            output = trainer.train(resume_from_checkpoint=checkpoint)
    _check_finite(trainer, metrics.history, out)
    trainer.save_final(str(out))  # model (safetensors) + tokenizer, staged then renamed into place
    output = output._replace(
        training_loss=_train_loss(metrics.history, output, _checkpoint_step(checkpoint), trainer.state.global_step)
    )
    return _finish(
        run, trainer, output, metrics, _stopped_by(budgets, limit, trainer.state.global_step), peak, prepared, out
    )


def _check_finite(trainer: RobustTrainer, history: list[dict], out: Path) -> None:
    """Refuse to save non-finite weights as the final model (or to write a summary for them).

    "skip" drops the updates of steps whose loss is NaN/inf, but an update with a finite loss can
    still overflow the weights (an absurd learning rate); every later loss is then skipped and
    the logged mean covers only the few steps before.
    """
    bad = [name for name, p in trainer.model.named_parameters() if not torch.isfinite(p).all()]
    steps = trainer.state.global_step
    skipped = sum(1 for r in history if "skipped_step" in r)
    if any_process(bool(bad), trainer.args.device):  # FSDP shards differ: every process must stop together
        raise UserError(
            f"{out}: the weights are non-finite after step {steps} "
            f"({bad[0] if bad else 'on another process'}{' and others' if len(bad) > 1 else ''}; "
            f"{skipped} of {steps} steps skipped); not saved as the final model (lower train.learning_rate?)"
        )
    if steps and skipped * 2 > steps and trainer.is_world_process_zero():
        _warn(
            f"{out}: {skipped} of {steps} steps were skipped (non-finite loss); "
            "the training loss covers only the others"
        )


def _time_budgets(train, metrics: MetricsCallback) -> dict[str, TimeBudgetCallback]:
    """{key: callback} of the time budgets set: max_seconds (wall clock), max_compute_seconds (clocks.compute)."""
    budgets = {}
    if train.max_seconds:
        budgets["max_seconds"] = TimeBudgetCallback(train.max_seconds, metrics)
    if train.max_compute_seconds:
        budgets["max_compute_seconds"] = TimeBudgetCallback(
            train.max_compute_seconds, metrics, clock=metrics.clocks.compute
        )
    return budgets


def _stopped_by(budgets: dict[str, TimeBudgetCallback], limit, steps: int) -> str:
    """The limit that ended the run: a time budget (max_seconds, max_compute_seconds), else the step
    limit's (max_steps or max_flops) once reached; a run a callback stopped earlier says max_steps,
    which a resume does not take as finished."""
    for key, budget in budgets.items():
        if budget.triggered:
            return key
    return limit.stopped_by if steps >= limit.max_steps else "max_steps"


def _restore_only(trainer: RobustTrainer, checkpoint: str, metrics: MetricsCallback):
    """Load a final checkpoint without training (the Trainer would take one step past max_steps)."""
    from transformers.trainer_callback import TrainerState
    from transformers.trainer_utils import TrainOutput

    trainer._load_from_checkpoint(checkpoint)
    trainer.state = TrainerState.load_from_json(os.path.join(checkpoint, "trainer_state.json"))
    metrics.on_train_begin(trainer.args, trainer.state, trainer.control)
    return TrainOutput(trainer.state.global_step, 0.0, {})


def _init_from(run: RunConfig) -> tuple[PreTrainedModel, RunConfig]:
    """The model of `train.init_from`, and the run with its tokenizer as data.tokenizer (unless set).

    The saved config decides the architecture; model.family and model.seq_len (which the data is
    cut to) must agree with it, so a run config cannot silently describe a different model.
    """
    from ..models import context_length, family_of
    from ..runs.rundir import load_pretrained

    source = run.train.init_from
    model, _ = load_pretrained(source)
    family, length = family_of(model).name, context_length(model)
    if (family, length) != (run.model.family, run.model.seq_len):
        raise UserError(
            f"train.init_from: {source} is a {family} model with seq_len {length}, but the run config says "
            f"model.family={run.model.family}, model.seq_len={run.model.seq_len}; make them agree"
        )
    if run.data.tokenizer is None:
        run = dataclasses.replace(run, data=dataclasses.replace(run.data, tokenizer=source))
    return model.train(), run


def _finish(run, trainer, output, metrics, stopped_by: str, peak, prepared, out) -> TrainResult:
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
        processes=max(trainer.args.world_size, 1),
        train_seconds=seconds,
        cpu_seconds=metrics.clocks.cpu(),
        gpu_seconds=metrics.clocks.gpu(),
        compute_seconds=metrics.clocks.compute(),
        flops=metrics.flops(steps),
        flops_per_step=metrics.flops_per_step,
        tokens_per_second=steps * metrics.tokens_per_step / seconds if seconds else 0.0,
        peak_memory_bytes=peak.bytes,
        stopped_by=stopped_by,
        skipped_steps=[int(r["skipped_step"]) for r in metrics.history if "skipped_step" in r],
    )
    if prepared.eval is not None and trainer.is_world_process_zero():
        result.eval_metrics = evaluate(
            model, _eval_subset(prepared.eval, run), batch_size=run.train.eval_batch_size or run.train.batch_size
        )
        if not any(r["step"] == steps and "eval_loss" in r for r in metrics.history):  # once, a resume included
            metrics.record(steps, {f"eval_{k}": v for k, v in result.eval_metrics.items()})
    if trainer.is_world_process_zero():
        summary = {
            k: v
            for k, v in vars(result).items()
            if k not in ("model", "history", "output_dir", "parameters", "already_finished")
        }
        summary["parameters"] = vars(result.parameters)
        summary["task"] = model_task(model)
        atomic_write_json(out / SUMMARY, summary)
    return result
