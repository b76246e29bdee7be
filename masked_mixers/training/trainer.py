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
   "stop" keeps the first bad step on the device and looks at it only where the host waits for
   the device anyway (logging, evaluation, saving, the last step), so a GPU is never stalled by a
   per-step `.item()`; the run stops there, before anything is logged or saved, naming the first
   bad step. "skip" has to know before every optimizer step, so it syncs every step.
   A skipped step still counts as a step (the learning-rate schedule advances) and is logged as
   {"skipped_step": N} in metrics.jsonl; the Trainer's logging_nan_inf_filter keeps the NaN out
   of the logged training loss. A NaN/inf loss is the first clause of the one definition of a
   diverged run (divergence.py); its other clause is judged on the logged history.
3. Training objectives. A model whose config records one (objectives/: multi-token prediction,
   one-step completion) is trained on that objective's loss through `compute_loss`.
4. The token count of a shifted loss. The Trainer divides a causal LM's summed loss by the
   labelled tokens it counts in the batch (`num_items_in_batch`), over `labels[..., 1:]` only when
   the model's `loss_type` maps to ForCausalLMLoss. transformers' GPT2LMHeadModel has
   `loss_type = None` (its class name matches no LOSS_MAPPING key) yet shifts its labels (the
   None falls back to ForCausalLMLoss), so the Trainer counted one token per row too many and
   GPT-2's logged training and eval losses came out low by (L - 1) / L on packed rows
   (`declare_shifted_loss`).
"""

from __future__ import annotations

import os
import shutil

import torch
import torch.distributed as dist
from safetensors import SafetensorError
from transformers import Trainer, TrainerCallback
from transformers.loss.loss_utils import LOSS_MAPPING, ForCausalLMLoss
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint, rotate_checkpoints

from ..core.errors import UserError, reason
from ..core.files import share_like_umask
from ..models import family_of
from ..objectives import compute_loss as objective_loss
from ..objectives import objective_config
from ..runs import manifest
from ..runs.rundir import MODEL_CONFIG, STAGING_DIR


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

    def __init__(self, trainer: RobustTrainer):
        self.trainer = trainer

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if self.trainer.drop_update:
            self.trainer.model.zero_grad(set_to_none=True)
            self.trainer.drop_update = False


class _CheckAtSyncPoints(TrainerCallback):
    """Look at the device-side non-finite record where the host is about to wait for the device anyway."""

    def __init__(self, trainer: RobustTrainer):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        if (
            control.should_log
            or control.should_evaluate
            or control.should_save
            or control.should_training_stop
            or state.global_step >= state.max_steps
        ):
            self.trainer.raise_if_nonfinite()


def declare_shifted_loss(model) -> None:
    """Give a next-token (shifting) causal LM the `loss_type` the Trainer reads to count its tokens.

    transformers 5.24: `Trainer.__init__` sets `_loss_shifts_labels` from
    `LOSS_MAPPING.get(model.loss_type) is ForCausalLMLoss` (transformers/trainer.py, "Causal LM
    losses shift labels internally"), and `_get_num_items_in_batch` then counts `labels[..., 1:]`
    or, otherwise, every label. `PreTrainedModel.__init__` (modeling_utils.py, "for initialization
    of the loss") derives loss_type from the class name, which gives None for GPT2LMHeadModel,
    while its `loss_function` falls back to ForCausalLMLoss for None: the loss is shifted, the
    count is not. "ForCausalLM" selects the same loss function, so only the count changes.
    Autoencoders and in-place (bidirectional) families do not shift; they are left as they are.
    """
    if model is None or family_of(model).label_shift == 0:
        return
    if LOSS_MAPPING.get(getattr(model, "loss_type", None)) is not ForCausalLMLoss:
        model.loss_type = "ForCausalLM"


class RobustTrainer(Trainer):
    def __init__(self, *args, on_nonfinite: str = "stop", **kwargs):
        if on_nonfinite not in ("stop", "skip"):
            raise UserError(f"train.on_nonfinite: expected 'stop' or 'skip', got {on_nonfinite!r}")
        declare_shifted_loss(kwargs.get("model", args[0] if args else None))  # before the Trainer reads loss_type
        super().__init__(*args, **kwargs)
        self.on_nonfinite = on_nonfinite
        self.drop_update = False
        self.first_bad = None  # "stop": (step, loss) of the first non-finite loss, as device tensors; step 0 = none yet
        self.add_callback(_DropUpdate(self) if on_nonfinite == "skip" else _CheckAtSyncPoints(self))

    def _staged(self, root: str, save, what: str) -> None:
        """Run `save()` with args.output_dir pointed at the staging folder; a failure is one line."""
        staging = os.path.join(root, STAGING_DIR)
        self.args.output_dir = staging
        try:
            save()
        except (
            OSError,
            RuntimeError,
            SafetensorError,
        ) as err:  # on a full disk: torch.save's "enforce fail", safetensors' own type
            shutil.rmtree(staging, ignore_errors=True)  # the disk is not left full of a partial save
            self._close_progress_bar()  # a checkpoint fails mid-training: the error starts a line of its own
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
            names = sorted(
                os.listdir(staging), key=lambda name: name == MODEL_CONFIG
            )  # config.json last: it marks a model folder
            manifest.move_in(staging, root, names)
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
            manifest.move_in(staging, root, [name])  # replaces a stale copy of the same step from an earlier run (ours)
            shutil.rmtree(staging, ignore_errors=True)
            rotate_checkpoints(root, self.args.save_total_limit)
            manifest.forget_missing(root, f"{PREFIX_CHECKPOINT_DIR}-*")
        self.accelerator.wait_for_everyone()

    def _record_nonfinite(self, loss: torch.Tensor) -> None:
        """Remember the first non-finite loss on the device: no sync."""
        loss = loss.detach().float().reshape(-1)[:1].reshape(())  # the (first) loss value, a 0-d tensor
        if self.first_bad is None:
            self.first_bad = (
                torch.zeros((), dtype=torch.long, device=loss.device),
                torch.zeros((), device=loss.device),
            )
        step, value = self.first_bad
        fresh = (step == 0) & ~torch.isfinite(loss)
        self.first_bad = (torch.where(fresh, self.state.global_step + 1, step), torch.where(fresh, loss, value))

    def raise_if_nonfinite(self) -> None:
        """One sync: raise NonFiniteLoss naming the first bad step of any process, if there was one."""
        if self.first_bad is None:
            return
        step, value = self.first_bad
        never = torch.iinfo(torch.long).max
        first = torch.where(step > 0, step, never)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(first, op=dist.ReduceOp.MIN)
        first = int(first)
        if first != never:
            shown = value.item() if int(step) == first else "non-finite (on another process)"
            last = get_last_checkpoint(self.args.output_dir) if os.path.isdir(self.args.output_dir) else None
            self._close_progress_bar()
            raise NonFiniteLoss(f"step {first}: loss is {shown}; last good checkpoint: {last or 'none'}", first)

    def _close_progress_bar(self) -> None:
        """End the Trainer's tqdm line (it has just redrawn this step) so the error starts a line of its own."""
        for callback in self.callback_handler.callbacks:
            bar = getattr(callback, "training_bar", None)
            if bar is not None:
                bar.close()
                callback.training_bar = None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The model's own loss, or that of the objective it is being trained with (objectives/)."""
        unwrapped = self.accelerator.unwrap_model(model)
        if objective_config(unwrapped) is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss, outputs = objective_loss(
            unwrapped, inputs, num_items_in_batch if self.model_accepts_loss_kwargs else None
        )
        return (loss, outputs) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.on_nonfinite == "stop":
            self._record_nonfinite(loss)
            return loss
        bad = torch.tensor(float(not torch.isfinite(loss).all()), device=loss.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
        if bad.item():
            step = self.state.global_step + 1
            self.drop_update = True
            self.log({"skipped_step": step})
        return loss
