"""The Hugging Face Trainer with two safety nets a long research run needs.

1. Atomic checkpoints. The stock Trainer writes `checkpoint-N/` in place, so a SIGKILL during a
   save leaves a half-written folder that `get_last_checkpoint` would then pick for resume. Here
   every process writes into a staging folder and the main process renames it to
   `checkpoint-N` only once all files are complete (a rename within one filesystem is atomic).
2. A non-finite loss guard. A NaN/inf loss either stops training with one line naming the step
   and the last good checkpoint, or (train.on_nonfinite = "skip") drops that step's gradients so
   the optimizer does not apply them. All processes agree, so DDP ranks never diverge or hang.
   A skipped step still counts as a step (the learning-rate schedule advances) and is logged as
   {"skipped_step": N} in metrics.jsonl; the Trainer's logging_nan_inf_filter keeps the NaN out
   of the logged training loss.
3. Training objectives. A model whose config records one (objectives/: multi-token prediction,
   one-step completion) is trained on that objective's loss through `compute_loss`.
"""

from __future__ import annotations

import os
import shutil

import torch
import torch.distributed as dist
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint, rotate_checkpoints

from .errors import UserError
from .objectives import compute_loss as objective_loss
from .objectives import objective_config
from .rundir import STAGING_DIR


class NonFiniteLoss(UserError):
    """Training produced a NaN/inf loss and was configured to stop; `step` is the optimizer step it happened at."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


class _DropUpdate(TrainerCallback):
    """Before the optimizer steps, drop the gradients of a step that saw a non-finite loss.

    Done here rather than in training_step so that every micro-batch of a gradient-accumulation
    step is dropped, and after clipping (which NaN gradients would poison). Parameters without a
    gradient are left alone by torch optimizers.
    """

    def __init__(self, trainer: "RobustTrainer"):
        self.trainer = trainer

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if self.trainer.drop_update:
            self.trainer.model.zero_grad(set_to_none=True)
            self.trainer.drop_update = False


class RobustTrainer(Trainer):
    def __init__(self, *args, on_nonfinite: str = "stop", **kwargs):
        if on_nonfinite not in ("stop", "skip"):
            raise UserError(f"train.on_nonfinite: expected 'stop' or 'skip', got {on_nonfinite!r}")
        super().__init__(*args, **kwargs)
        self.on_nonfinite = on_nonfinite
        self.drop_update = False
        self.add_callback(_DropUpdate(self))

    def _save_checkpoint(self, model, trial) -> None:
        root = self.args.output_dir
        staging = os.path.join(root, STAGING_DIR)
        if self.args.should_save:
            shutil.rmtree(staging, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        self.args.output_dir = staging
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.output_dir = root
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            target = os.path.join(root, name)
            shutil.rmtree(target, ignore_errors=True)  # a stale copy of the same step from an earlier run
            os.replace(os.path.join(staging, name), target)
            shutil.rmtree(staging, ignore_errors=True)
            rotate_checkpoints(root, self.args.save_total_limit)
        self.accelerator.wait_for_everyone()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The model's own loss, or that of the objective it is being trained with (objectives/)."""
        unwrapped = self.accelerator.unwrap_model(model)
        if objective_config(unwrapped) is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss, outputs = objective_loss(unwrapped, inputs, num_items_in_batch if self.model_accepts_loss_kwargs else None)
        return (loss, outputs) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        bad = torch.tensor(float(not torch.isfinite(loss).all()), device=loss.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
        if bad.item():
            step = self.state.global_step + 1
            if self.on_nonfinite == "stop":
                last = get_last_checkpoint(self.args.output_dir) if os.path.isdir(self.args.output_dir) else None
                raise NonFiniteLoss(f"step {step}: loss is {loss.item()}; last good checkpoint: {last or 'none'}", step)
            self.drop_update = True
            self.log({"skipped_step": step})
        return loss
