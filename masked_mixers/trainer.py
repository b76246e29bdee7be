"""The Hugging Face Trainer with two safety nets a long research run needs.

1. Atomic checkpoints. The stock Trainer writes `checkpoint-N/` in place, so a SIGKILL during a
   save leaves a half-written folder that `get_last_checkpoint` would then pick for resume. Here
   every process writes into a staging folder and the main process renames it to
   `checkpoint-N` only once all files are complete (a rename within one filesystem is atomic).
   The final model goes through the same staging folder (`save_final`), its config.json moved
   last, so a kill mid-save never leaves a folder that looks like a model but is not one. A save
   that fails (full disk, read-only folder) removes the staging folder and stops with one line.
2. A non-finite loss guard. A NaN/inf loss either stops training with one line naming the step
   and the last good checkpoint, or (train.on_nonfinite = "skip") drops that step's gradients so
   the optimizer does not apply them. All processes agree, so DDP ranks never diverge or hang.
   A skipped step still counts as a step (the learning-rate schedule advances) and is logged as
   {"skipped_step": N} in metrics.jsonl; the Trainer's logging_nan_inf_filter keeps the NaN out
   of the logged training loss.
"""

from __future__ import annotations

import os
import shutil

import torch
import torch.distributed as dist
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint, rotate_checkpoints

from .errors import UserError, reason
from .files import share_like_umask
from .rundir import MODEL_CONFIG, STAGING_DIR


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

    def _staged(self, root: str, save, what: str) -> None:
        """Run `save()` with args.output_dir pointed at the staging folder; a failure is one line."""
        staging = os.path.join(root, STAGING_DIR)
        self.args.output_dir = staging
        try:
            save()
        except (OSError, RuntimeError) as err:  # torch.save's "enforce fail" on a full disk is a RuntimeError
            shutil.rmtree(staging, ignore_errors=True)  # the disk is not left full of a partial save
            raise UserError(f"{root}: cannot save the {what} ({reason(err)})") from None
        finally:
            self.args.output_dir = root

    def save_final(self, root: str) -> None:
        """save_model through the staging folder; files then move into `root`, config.json last."""
        staging = os.path.join(root, STAGING_DIR)
        if self.args.should_save:
            shutil.rmtree(staging, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        self._staged(root, lambda: self.save_model(staging), "final model")
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            share_like_umask(staging)
            names = sorted(os.listdir(staging), key=lambda name: name == MODEL_CONFIG)  # config.json last: it marks a model folder
            for name in names:
                target = os.path.join(root, name)
                if os.path.isdir(target) and not os.path.islink(target):
                    shutil.rmtree(target)
                os.replace(os.path.join(staging, name), target)
            shutil.rmtree(staging, ignore_errors=True)
        self.accelerator.wait_for_everyone()

    def _save_checkpoint(self, model, trial) -> None:
        root = self.args.output_dir
        staging = os.path.join(root, STAGING_DIR)
        if self.args.should_save:
            shutil.rmtree(staging, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        self._staged(root, lambda: super(RobustTrainer, self)._save_checkpoint(model, trial), "checkpoint")
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            share_like_umask(staging)  # transformers writes weights 0600
            name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            target = os.path.join(root, name)
            shutil.rmtree(target, ignore_errors=True)  # a stale copy of the same step from an earlier run
            os.replace(os.path.join(staging, name), target)
            shutil.rmtree(staging, ignore_errors=True)
            rotate_checkpoints(root, self.args.save_total_limit)
        self.accelerator.wait_for_everyone()

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
