"""The model card (README.md) `push` writes for a run: what a hub user needs, from the run's own records.

Read from the run folder (config.json, run.yaml, train_summary.json): the family and its class, the
size, L and what it means for inputs and generation, the data (hub ids by name, local files by file
name only: no local path leaves the machine), the training budget, the held-out numbers, a licence
and a usage example that works without this package. YAML metadata: `library_name: transformers`,
the pipeline tag, tags, hub datasets, licence.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

from ..core.errors import UserError, reason
from .rundir import MODEL_CONFIG, RUN_CONFIG, SUMMARY

DEFAULT_LICENSE = "other"  # the hub's "other": no licence was chosen; `push --license` names one


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: cannot read ({reason(err)})") from None


def _run_config(run_dir: Path):
    from .config import load_run_config

    return load_run_config(run_dir / RUN_CONFIG) if (run_dir / RUN_CONFIG).is_file() else None


def is_hub_id(name: str) -> bool:
    """A hub id (`owner/name` or `name`) rather than a local path: no suffix, not absolute, no ./ ../ ~."""
    return not (Path(name).suffix or name.startswith(("/", ".", "~")) or os.path.exists(name) or name.count("/") > 1)


def public_name(name: str) -> str:
    """How a data source, tokenizer or starting model is named on the card: hub ids as they are,
    local paths by their last part only."""
    return f"`{name}`" if is_hub_id(name) else f"`{Path(name).name}` (a local file)"


def _sources(value) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def folder_family(config: dict, where: Path):
    """The family of a saved model from its config.json's contents; a foreign model_type is one line naming `where`."""
    from ..models import family_of

    try:
        return family_of(SimpleNamespace(model_type=config.get("model_type")))
    except ValueError as err:
        raise UserError(f"{where}: {err}") from None


def _metric_rows(metrics: dict) -> str:
    rows = [
        f"| {name} | {value:.4f} |" if isinstance(value, float) else f"| {name} | {value} |"
        for name, value in sorted(metrics.items())
    ]
    return "\n".join(["| metric | value |", "|---|---|", *rows]) if rows else "No held-out evaluation was recorded."


def _compute_line(summary: dict) -> str:
    """Training FLOPs (analytic, as `bench` counts them), CPU and GPU seconds, where the summary has them."""
    parts = [
        f"{summary['flops']:.3g} training FLOPs (analytic: 3 x forward matrix-multiply FLOPs)"
        if summary.get("flops") is not None
        else None,
        f"CPU time {summary['cpu_seconds']:.0f} s" if summary.get("cpu_seconds") is not None else None,
        f"GPU time {summary['gpu_seconds']:.0f} s" if summary.get("gpu_seconds") is not None else None,
    ]
    shown = [p for p in parts if p]
    return "- compute: " + ", ".join(shown) if shown else "- compute: unknown"


def _budget(summary: dict, run) -> str:
    tokens = summary.get("tokens_seen")
    lines = [
        f"- steps: {summary.get('steps', 'unknown')} (stopped by {summary.get('stopped_by', 'unknown')})",
        f"- tokens seen: {tokens:,}" if isinstance(tokens, int) else "- tokens seen: unknown",
        f"- training time: {summary['train_seconds']:.0f} s"
        if "train_seconds" in summary
        else "- training time: unknown",
        _compute_line(summary),
    ]
    t = run.train if run else None
    if t is not None:
        warmup = (
            f"{t.warmup_steps} warmup steps" if t.warmup_ratio is None else f"warmup {t.warmup_ratio:g} of the steps"
        )
        lines.append(
            f"- limits: max_steps {t.max_steps}, max_seconds {t.max_seconds}, max_compute_seconds "
            f"{t.max_compute_seconds}, max_flops {t.max_flops}; batch {t.batch_size} x accumulation "
            f"{t.gradient_accumulation_steps}; optimizer {t.optimizer}, learning rate {t.learning_rate}, "
            f"{t.lr_scheduler} schedule, {warmup}"
            + (f"; started from {public_name(t.init_from)}" if t.init_from else "")
        )
    return "\n".join(lines)


def _data_section(run) -> str:
    """The data section: corpus, tokenizer, padding side, examples of L tokens."""
    if run is None:
        return "Not recorded (no run.yaml in the run folder)."
    d = run.data
    held_out = ", ".join(map(public_name, _sources(d.eval_source))) or f"{d.eval_fraction:.0%} of the corpus"
    return (
        f"- corpus: {', '.join(map(public_name, _sources(d.source)))} (split `{d.split}`"
        + (f", at most {d.max_documents} documents" if d.max_documents else "")
        + f")\n- held out: {held_out}\n- tokenizer: "
        + (public_name(d.tokenizer) if d.tokenizer else f"byte-level BPE trained on the corpus, {d.vocab_size} tokens")
        + f"; {'packed' if d.packing else f'{d.padding_side}-padded'} examples of {run.model.seq_len} tokens"
        + ("; lowercased" if d.lowercase else "")
    )


def _context(family, length) -> str:
    """What the fixed L means for a user of this family."""
    text = (
        f"L = {length} tokens: the model was trained on examples of L tokens (`max_position_embeddings`, "
        "and the tokenizer's `model_max_length`)."
    )
    if family.capabilities.positions_are_rows:
        text += " Its token mixing is L x L, so one forward pass takes at most L tokens; a longer input is refused."
    else:
        text += " Positions past L were never trained."
    if not family.capabilities.generates:
        return text + " It does not generate text left to right."
    if family.capabilities.slides_past_context:
        return text + " `generate()` goes on past L by sliding a window: each new token sees the last L tokens."
    return text + " A prompt and its continuation together must fit in L tokens (truncate the prompt to leave room)."


def _usage(repo: str, family) -> str:
    """A usage example that runs where this package is not installed (`push` saves a standalone family's code)."""
    from ..models import CAUSAL_LM

    trust = ", trust_remote_code=True" if family.standalone else ""
    main = "AutoModelForCausalLM" if family.task == CAUSAL_LM else "AutoModel"
    lines = [
        f"from transformers import {main}, AutoTokenizer",
        "",
        f'model = {main}.from_pretrained("{repo}"{trust})',
        f'tokenizer = AutoTokenizer.from_pretrained("{repo}"{trust})',
    ]
    if family.capabilities.generates:
        lines += [
            'inputs = tokenizer(["once upon a time"], return_tensors="pt")',
            "out = model.generate(**inputs, max_new_tokens=20, do_sample=False)",
            "print(tokenizer.decode(out[0], skip_special_tokens=True))",
        ]
    text = "```python\n" + "\n".join(lines) + "\n```\n"
    if family.standalone:
        text = (
            "The model code is saved beside the weights (`auto_map` in config.json), so `masked-mixers` need not "
            "be installed; `trust_remote_code=True` runs that code. The tokenizer needs no code, but "
            "`AutoTokenizer` reads config.json first, so pass it the same flag (or load "
            "`PreTrainedTokenizerFast.from_pretrained(...)`, which reads only the tokenizer files).\n\n" + text
        )
    if family.task == CAUSAL_LM and ("AutoModel" in family.auto or not family.auto):
        text += (
            "\nHidden states (`AutoModel`: the trunk without the LM head), e.g. as sentence embeddings: "
            f'`SentenceTransformer("{repo}"{trust})` (sentence-transformers) or '
            f'`pipeline("feature-extraction", model="{repo}"{trust})`.\n'
        )
    return text


def model_card(run_dir: str | os.PathLike, repo_id: str, license: str = DEFAULT_LICENSE) -> str:
    """README.md text for the run, titled `repo_id` (a hub id, or the name a local push goes by)."""
    from huggingface_hub import ModelCardData

    run_dir = Path(run_dir)
    config, summary, run = _read_json(run_dir / MODEL_CONFIG), _read_json(run_dir / SUMMARY), _run_config(run_dir)
    family = folder_family(config, run_dir / MODEL_CONFIG)
    hub_datasets = [s for s in _sources(run.data.source) if is_hub_id(s)] if run else []
    meta = ModelCardData(
        library_name="transformers",
        pipeline_tag="text-generation" if family.capabilities.generates else None,
        tags=["masked-mixers", family.name],
        datasets=hub_datasets or None,
        license=license,
    )
    params = summary.get("parameters", {})
    keys = ("hidden_size", "num_hidden_layers", "seq_len", "max_position_embeddings", "mixer_type", "vocab_size")
    size = ", ".join(f"{key} {config[key]}" for key in keys if key in config)
    total = params.get("total")
    context = config.get("seq_len", config.get("max_position_embeddings", "unknown"))
    licence_note = " (the default: no licence was chosen when it was pushed)" if license == DEFAULT_LICENSE else ""
    return f"""---
{meta.to_yaml()}
---

# {repo_id}

A **{family.name}** model trained with the `masked-mixers` toolkit (masked mixers: Badger,
arXiv 2409.01482; Llama baselines from transformers). {family.description[0].upper() + family.description[1:]}.

## Model

- family: `{family.name}` (`{config.get("architectures", ["?"])[0]}`)
- size: {f"{total:,} parameters ({params.get('non_embedding', 0):,} non-embedding)" if total else "unknown"}; {size}
- licence: `{license}`{licence_note}

## Context length

{_context(family, context)}

## Use

{_usage(repo_id, family)}
## Data

{_data_section(run)}

## Training budget

{_budget(summary, run)}

## Evaluation (held-out)

{_metric_rows(summary.get("eval_metrics", {}))}
"""


__all__ = ["DEFAULT_LICENSE", "folder_family", "is_hub_id", "model_card", "public_name"]
