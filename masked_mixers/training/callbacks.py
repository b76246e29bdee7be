"""Trainer callbacks for the bookkeeping a comparison needs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ..core.clocks import TrainingClocks
from ..core.errors import UserError
from ..core.files import atomic_write_jsonl
from ..runs.rundir import read_metrics

# TrainingClocks.start argument -> metrics.jsonl key
CLOCK_KEYS = {"wall": "elapsed_s", "cpu": "cpu_s", "gpu": "gpu_s", "step_cpu": "step_cpu_s"}


class MetricsCallback(TrainerCallback):
    """Append every log/eval event to metrics.jsonl (rank 0 only) and keep it in `history`.

    The Trainer's own logs lack what the comparison plots and budgets need: wall-clock, CPU and
    GPU seconds since the start of training (continued across a resume; clocks.py), the tokens
    seen and the analytic training FLOPs done (steps x `flops_per_step`, budget.py; null where
    the objective is not counted).
    """

    def __init__(self, path: Path, tokens_per_step: int, flops_per_step: float | None = None):
        self.path, self.tokens_per_step, self.flops_per_step = path, tokens_per_step, flops_per_step
        self.history: list[dict[str, Any]] = []
        self.clocks = TrainingClocks()

    def on_train_begin(self, args, state, control, **kwargs):
        before = {}
        if state.is_world_process_zero and self.path.exists():  # resuming: keep earlier events up to the checkpoint
            kept = [r for r in read_metrics(self.path) if r.get("skipped_step", r["step"]) <= state.global_step]
            self.history = kept
            before = {key: max((r.get(name) or 0.0 for r in kept), default=0.0) for key, name in CLOCK_KEYS.items()}
            atomic_write_jsonl(self.path, kept)
        self.clocks.start(**before)

    def on_step_begin(self, args, state, control, **kwargs):
        self.clocks.step_begin()

    def on_step_end(self, args, state, control, **kwargs):
        self.clocks.step_end()

    def elapsed(self) -> float:
        return self.clocks.wall()

    def flops(self, steps: int) -> float | None:
        return None if self.flops_per_step is None else steps * self.flops_per_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            self.record(state.global_step, logs)

    def record(self, step: int, logs: dict) -> None:
        """Append one event at `step` (its numeric `logs`, with clocks, tokens and FLOPs) to the history and file."""
        record = {"step": step, "elapsed_s": round(self.elapsed(), 3), "cpu_s": round(self.clocks.cpu(), 3)}
        record["step_cpu_s"] = round(self.clocks.step_cpu(), 3)
        gpu = self.clocks.gpu()
        if gpu is not None:
            record["gpu_s"] = round(gpu, 3)
        record["tokens_seen"] = step * self.tokens_per_step
        if self.flops_per_step is not None:
            record["flops"] = self.flops(step)
        record.update({k: v for k, v in logs.items() if isinstance(v, (int, float))})
        self.history.append(record)
        try:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        except OSError as err:  # a full disk or a folder gone read-only mid-run
            raise UserError(f"{self.path}: cannot write ({err.strerror or err})") from None


class FinalEvaluationCallback(TrainerCallback):
    """Skip the Trainer's evaluation at the last step: train.py evaluates the final model right after
    (with bits per byte and the task's own scores) and records it as the run's last eval event, so the
    Trainer's would compute the same loss twice (a second or more per run, over a sweep of short runs).
    Listed after the time budgets, so a budget that stops a run does not evaluate it twice either."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps or control.should_training_stop:
            control.should_evaluate = False


class TimeBudgetCallback(TrainerCallback):
    """Stop (after evaluating and saving) once a time budget of training is spent.

    clock: the seconds spent so far; the wall clock by default (train.max_seconds), or
    `metrics.clocks.compute` for train.max_compute_seconds (GPU time of the steps on CUDA, else
    their CPU time: not the machine's load). Read after every optimizer step (on CUDA that waits
    for the step's events: one host-device sync per step).
    """

    def __init__(self, max_seconds: float, metrics: MetricsCallback, clock: Callable[[], float] | None = None):
        self.max_seconds, self.metrics = max_seconds, metrics
        self.clock = clock or metrics.elapsed
        self.triggered = False

    def on_step_end(self, args, state, control, **kwargs):
        if self.clock() >= self.max_seconds:
            self.triggered = True
            control.should_training_stop = control.should_evaluate = control.should_save = True
