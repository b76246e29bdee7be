"""Training objectives besides plain next-token prediction, kept out of the models' forwards.

`train.objective` picks one:

- `clm`: next-token prediction, the model's own loss (nothing here runs);
- `mtp`: multi-token prediction, recurrent or with extra heads (mtp.py), every causal family;
- `completion`: one-step completion of the second half (completion.py), families whose
  registry entry sets `Capabilities.one_step_completion`.

The objective is a training concern: `prepare_model` attaches its parameters and records it in
the model's config; the HF Trainer calls `compute_loss` (trainer.py); evaluation calls
`objective_metrics`; `load_run` calls `restore`. Generation uses speculative.py (MTP heads) and
`completion.one_step_ids`.
"""

from __future__ import annotations

from ..core.errors import UserError
from ..models import family_of
from .base import OBJECTIVE_KEY, objective_config, record, restore_modules
from .completion import (
    attach_mask,
    completion_eval_sums,
    completion_forward,
    completion_labels,
    completion_settings,
    one_step_ids,
)
from .mtp import MODES, attach_heads, mtp_compute_loss, mtp_eval_sums, mtp_settings
from .speculative import can_speculate, speculative_greedy

OBJECTIVES = ("clm", "mtp", "completion")


def check_objective(train, family, key: str = "train") -> None:
    """Refuse an objective the family cannot train with, or impossible settings, in one line."""
    name = train.objective
    if name not in OBJECTIVES:
        raise UserError(f"{key}.objective: unknown value {name!r} (choose from {', '.join(OBJECTIVES)})")
    if name == "mtp":
        if train.mtp_tokens < 1:
            raise UserError(f"{key}.mtp_tokens: must be >= 1, got {train.mtp_tokens}")
        if train.mtp_mode not in MODES:
            raise UserError(f"{key}.mtp_mode: unknown value {train.mtp_mode!r} (choose from {', '.join(MODES)})")
        if family.label_shift != 1 or not family.capabilities.generates:
            raise UserError(f"{key}.objective: mtp needs a causal language model; family {family.name!r} is not one")
    if name == "completion" and not family.capabilities.one_step_completion:
        from ..models import FAMILIES

        able = [n for n, f in FAMILIES.items() if f.capabilities.one_step_completion]
        raise UserError(f"{key}.objective: completion is supported by {', '.join(able)}, not by family {family.name!r}")


def prepare_model(model, train) -> None:
    """Attach the objective's parameters to `model` and record the objective in its config."""
    check_objective(train, family_of(model))
    if train.objective == "mtp":
        if train.mtp_mode == "heads" and train.mtp_tokens > 1:
            attach_heads(model, train.mtp_tokens)
        record(model, {"name": "mtp", "tokens": train.mtp_tokens, "mode": train.mtp_mode})
    elif train.objective == "completion":
        record(model, attach_mask(model))


def restore(model, model_dir) -> None:
    """After from_pretrained: re-attach the objective's parameters and load their saved weights."""
    settings = objective_config(model)
    if not settings:
        return
    if settings["name"] == "mtp" and settings["mode"] == "heads" and settings["tokens"] > 1:
        attach_heads(model, settings["tokens"])
        restore_modules(model, model_dir, "mtp_heads.")
    elif settings["name"] == "completion":
        attach_mask(model)
        restore_modules(model, model_dir, "completion_mask.")


def data_collator(train):
    """The Trainer's collator for `train.objective`.

    Completion masks the first half's labels already in the batch, so the token count the HF
    Trainer makes from the labels (`num_items_in_batch`, its divisor under gradient accumulation
    and in evaluation) counts the predicted half only; with full labels it counted L - 1 tokens per
    row and the logged loss came out about half the completion loss.
    """
    from transformers import default_data_collator

    if train.objective != "completion":
        return default_data_collator

    def collate(features):
        batch = default_data_collator(features)
        batch["labels"] = completion_labels(batch["labels"], batch["labels"].shape[1] // 2)
        return batch

    return collate


def compute_loss(model, inputs: dict, num_items_in_batch=None):
    """(loss, outputs) of the model's recorded objective on one training batch.

    Under model.eval() (the Trainer's evaluations) an MTP model is scored on plain next-token
    loss, so its eval_loss curve is comparable with a CLM model's; a completion model on its
    completion loss, the only thing it is trained to do.
    """
    settings = objective_config(model) or {"name": "clm"}
    extra = {} if num_items_in_batch is None else {"num_items_in_batch": num_items_in_batch}
    if settings["name"] == "completion":
        out = completion_forward(
            model, inputs["input_ids"], inputs.get("attention_mask"), inputs["labels"], num_items_in_batch
        )
        return out.loss, out
    if settings["name"] == "mtp" and model.training:
        return mtp_compute_loss(model, inputs, settings["tokens"], settings["mode"], num_items_in_batch)
    out = model(**inputs, **extra)
    return out.loss, out


def objective_metrics(model, batches) -> dict[str, float]:
    """Held-out metrics of the objective itself (beyond the plain next-token loss).

    mtp: `mtp_loss_i` for each pass/head i (i = 0 is the next-token loss). completion:
    `completion_loss` (nats per predicted token) and `completion_token_accuracy`.
    """
    settings = objective_config(model)
    if not settings:
        return {}
    device = next(model.parameters()).device
    if settings["name"] == "mtp":
        totals = None
        for batch in batches:
            sums = mtp_eval_sums(
                model, {k: v.to(device) for k, v in batch.items()}, settings["tokens"], settings["mode"]
            )
            totals = sums if totals is None else [(a + c, b + d) for (a, b), (c, d) in zip(totals, sums)]
        return {f"mtp_loss_{i}": nats / max(count, 1) for i, (nats, count) in enumerate(totals or [])}
    nats = count = right = 0
    for batch in batches:
        n, c, r = completion_eval_sums(model, {k: v.to(device) for k, v in batch.items()})
        nats, count, right = nats + n, count + c, right + r
    return {
        "completion_loss": nats / max(count, 1),
        "completion_token_accuracy": right / max(count, 1),
        "completion_tokens": count,
    }


__all__ = [
    "OBJECTIVES",
    "OBJECTIVE_KEY",
    "can_speculate",
    "check_objective",
    "completion_settings",
    "compute_loss",
    "data_collator",
    "mtp_settings",
    "objective_config",
    "objective_metrics",
    "one_step_ids",
    "prepare_model",
    "restore",
    "speculative_greedy",
]
