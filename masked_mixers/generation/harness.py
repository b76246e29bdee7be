"""lm-evaluation-harness for this package's models: `MaskedMixersLM`, registered as lm-eval model "masked-mixers".

lm-eval's own `HFLM` does the work it is built for (tokenizing requests, batching them by length,
scoring continuations, rolling windows over long documents, stop sequences); this subclass only
changes what a masked mixer needs changed:

- the length: L (the model's `context_length`) instead of lm-eval's guess of 2048, so a document
  longer than L is scored in windows of L tokens (`loglikelihood_rolling`: every token is predicted
  once, each window with as much context as fits) and a context is cut to L tokens from the left;
- generation (`generate_until`): HFLM pads prompts on the left, which moves a mixer's short prompts
  to later rows of its mixing matrices and changes their greedy continuations; here the prompts go
  through `masked_mixers.generation`, which lays them out on the side the model was trained with,
  so a prompt's continuation does not depend on its batch.

Scoring (`loglikelihood`) pads on the right, so every text starts at position 0: the layout of
right-padded and packed training (this package's default). A mixer trained with left padding
(text ending at position L - 1) is scored off its training layout; a warning says so.

From Python: `lm_eval.simple_evaluate(model=MaskedMixersLM("runs/mixer"), tasks=[...])`, or after
`import masked_mixers.generation.harness`, `simple_evaluate(model="masked-mixers", model_args="pretrained=runs/mixer")`.
Needs the `lm-eval` extra: pip install "masked-mixers[lm-eval]".
"""

from __future__ import annotations

import logging

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from ..core.devices import resolve_device
from ..core.errors import UserError
from ..models import context_length
from ..runs.layout import positions_are_rows, trained_side
from ..runs.rundir import load_run
from . import generate_ids, require_causal_lm

log = logging.getLogger(__name__)

# lm-eval generation keywords (after its own normalisation) -> this package's sampling options
_SAMPLING_KEYS = {"do_sample", "temperature", "top_p", "top_k", "repetition_penalty"}


def sampling_options(generation_kwargs: dict) -> dict:
    """lm-eval's generation keywords as `generate_ids` options; temperature 0 or do_sample False is greedy."""
    unknown = sorted(set(generation_kwargs) - _SAMPLING_KEYS)
    if unknown:
        raise UserError(
            f"generation_kwargs: {', '.join(unknown)} not supported (supported: {', '.join(sorted(_SAMPLING_KEYS))})"
        )
    temperature = float(generation_kwargs.get("temperature") or 0.0)
    if not generation_kwargs.get("do_sample", False) or temperature == 0:
        return {"greedy": True, "repetition_penalty": float(generation_kwargs.get("repetition_penalty", 1.0))}
    return {
        "temperature": temperature,
        "top_p": float(generation_kwargs.get("top_p") or 1.0),
        "top_k": int(generation_kwargs.get("top_k") or 0),
        "repetition_penalty": float(generation_kwargs.get("repetition_penalty", 1.0)),
    }


@register_model("masked-mixers")
class MaskedMixersLM(HFLM):
    """A run directory (or a loaded model and tokenizer) as an lm-eval language model."""

    def __init__(
        self,
        pretrained: str | None = None,
        device: str = "auto",
        batch_size: int | str = 8,
        max_length: int | None = None,
        model=None,
        tokenizer=None,
        **kwargs,
    ):
        if model is None:
            if pretrained is None:
                raise UserError("masked-mixers lm-eval model: give pretrained=RUN_DIR")
            model, tokenizer = load_run(pretrained)
        require_causal_lm(model, str(pretrained or type(model).__name__))
        model.to(resolve_device(device))
        if positions_are_rows(model) and trained_side(model, tokenizer) == "left":
            log.warning(
                "%s was trained with left padding; lm-eval scores text from position 0 (right-padded layout)",
                pretrained,
            )
        super().__init__(
            pretrained=model,
            tokenizer=tokenizer,
            backend="causal",
            max_length=max_length or context_length(model),
            batch_size=batch_size if str(batch_size).startswith("auto") else int(batch_size),
            **kwargs,
        )

    @property
    def max_gen_toks(self) -> int:
        """Default new tokens when a task sets none: lm-eval's 256, but at most half of L (the context keeps the
        rest)."""
        return min(256, self.max_length // 2)

    def _model_generate(
        self, context: torch.Tensor, max_length: int, stop: list[str], **generation_kwargs
    ) -> torch.Tensor:
        """HFLM's left-padded contexts (b, w) -> (b, w + new): the same contexts laid out by masked_mixers.generation.

        HFLM reads the new tokens after column w and cuts the text at the stop strings itself.
        """
        mask = generation_kwargs.pop("attention_mask")
        prompts = [row[keep.bool()].tolist() for row, keep in zip(context, mask)]
        new = generate_ids(
            self.model,
            self.tokenizer,
            prompts,
            max_length - context.shape[1],
            stop_strings=stop,
            **sampling_options(generation_kwargs),
        )
        return torch.cat([context, new.to(context.device)], dim=1)


def evaluate_run(
    run_dir: str,
    tasks: list[str],
    *,
    include_path: list[str] | None = None,
    builtin_tasks: bool = True,
    num_fewshot: int | None = None,
    limit: float | None = None,
    batch_size: int = 8,
    device: str = "auto",
    seed: int = 0,
) -> dict:
    """lm-eval's simple_evaluate on a run directory: the results dict (`results`, `configs`, `n-shot`, ...)."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=include_path or None, include_defaults=builtin_tasks)
    missing = [t for t in tasks if not manager.match_tasks([t])]
    if missing:
        where = f"in {', '.join(include_path)}" if include_path else "among lm-eval's tasks"
        raise UserError(
            f"--tasks: no task {', '.join(map(repr, missing))} {where} "
            "(`lm-eval ls tasks` lists them; --include-path adds a folder of YAML tasks)"
        )
    lm = MaskedMixersLM(run_dir, device=device, batch_size=batch_size)
    return lm_eval.simple_evaluate(
        model=lm,
        tasks=tasks,
        task_manager=manager,
        num_fewshot=num_fewshot,
        limit=limit,
        log_samples=False,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
    )


__all__ = ["MaskedMixersLM", "evaluate_run", "sampling_options"]
