"""Trainer callbacks for the bookkeeping a comparison needs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from .errors import UserError
from .files import atomic_write_text
from .rundir import read_metrics


class MetricsCallback(TrainerCallback):
    """Append every log/eval event to metrics.jsonl (rank 0 only) and keep it in `history`.

    The Trainer's own logs lack wall-clock time since the start of *this* run's training and
    the tokens seen, which the loss-vs-time and loss-vs-tokens plots need.
    """

    def __init__(self, path: Path, tokens_per_step: int):
        self.path, self.tokens_per_step = path, tokens_per_step
        self.history: list[dict[str, Any]] = []
        self.elapsed_before = 0.0  # training seconds spent before a resume
        self._start = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()
        if state.is_world_process_zero and self.path.exists():  # resuming: keep earlier events up to the checkpoint
            kept = [r for r in read_metrics(self.path) if r.get("skipped_step", r["step"]) <= state.global_step]
            self.history = kept
            self.elapsed_before = max((r.get("elapsed_s", 0.0) for r in kept), default=0.0)
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def elapsed(self) -> float:
        return self.elapsed_before + (time.perf_counter() - self._start if self._start else 0.0)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        record = {"step": state.global_step, "elapsed_s": round(self.elapsed(), 3), "tokens_seen": state.global_step * self.tokens_per_step}
        record.update({k: v for k, v in logs.items() if isinstance(v, (int, float))})
        self.history.append(record)
        try:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        except OSError as err:  # a full disk or a folder gone read-only mid-run
            raise UserError(f"{self.path}: cannot write ({err.strerror or err})") from None


class TimeBudgetCallback(TrainerCallback):
    """Stop (after evaluating and saving) once the wall-clock budget of training is spent."""

    def __init__(self, max_seconds: float, metrics: MetricsCallback):
        self.max_seconds, self.metrics = max_seconds, metrics
        self.triggered = False

    def on_step_end(self, args, state, control, **kwargs):
        if self.metrics.elapsed() >= self.max_seconds:
            self.triggered = True
            control.should_training_stop = control.should_evaluate = control.should_save = True
