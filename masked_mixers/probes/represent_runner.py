"""`masked-mixers represent` end to end: load the models and the inputs, run the probe, report.

The probe itself (gradient descent on the input, decoding, the Hamming metric) is
representation.py; this module decides what it runs on. A MODEL is a run config YAML (an
untrained model of its model section), a saved model directory (trained), or `untrained:DIR`
(the directory's architecture with fresh weights); inputs come from token ids in a JSON file, a
run config's prepared eval split, or a corpus tokenized with a saved tokenizer. Every model sees
the same inputs, cut to the shortest model's length, so their scores compare.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from ..core.configfile import check_seed_option
from ..core.devices import resolve_device
from ..core.errors import UserError
from ..core.files import check_output_dir
from ..core.progress import progress_bar
from ..models import context_length
from ..runs.config import load_run_config
from ..runs.factory import build_model, count_parameters
from ..runs.rundir import load_model_config, load_run
from .report import print_representation, write_representation_report
from .representation import PROTOCOLS, InversionSettings, protocol_settings, representation_accuracy

UNTRAINED = "untrained:"


@dataclass
class RepresentRequest:
    """What `represent` was asked for; field names are the command's options (see commands/represent.py)."""

    models: list[str]
    data: str | None = None  # exactly one of data, text, ids
    text: str | None = None
    ids: str | None = None
    tokenizer: str | None = None
    split: str = "validation"
    text_field: str = "text"
    lowercase: bool = False
    num_texts: int = 16
    seq_len: int | None = None
    blocks: list[int] | None = None
    protocols: list[str] = field(default_factory=lambda: ["paper"])
    steps: int | None = None  # None: the protocol's own value (the fields down to top_k)
    lr: float | None = None
    lr_end_fraction: float | None = None
    schedule: str | None = None
    optimizer: str | None = None
    loss: str | None = None
    decode: str | None = None
    top_k: int | None = None
    batch_size: int = 8
    seed: int = 0
    overrides: list[str] = field(default_factory=list)
    out: str = "runs/represent"
    device: str = "auto"  # see devices.resolve_device
    trust_remote_code: bool = False

    def validate(self) -> None:
        """Counts in range before any model loads: `--steps 0` or `--blocks 99` would write empty results."""
        for key in ("num_texts", "steps", "top_k", "batch_size"):  # steps and top_k: None is the protocol's own
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise UserError(f"--{key.replace('_', '-')} must be at least 1, got {getattr(self, key)}")
        if self.seq_len is not None and self.seq_len < 1:
            raise UserError(f"--seq-len must be at least 1, got {self.seq_len}")
        if self.blocks is not None and min(self.blocks) < 0:
            raise UserError(f"--blocks must be block numbers >= 0, got {self.blocks}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise UserError(f"--lr must be a finite positive number, got {self.lr}")
        if self.lr_end_fraction is not None and not (math.isfinite(self.lr_end_fraction) and self.lr_end_fraction >= 0):
            raise UserError(f"--lr-end-fraction must be a finite number >= 0, got {self.lr_end_fraction}")
        check_seed_option(self.seed)
        self.out = os.path.expanduser(self.out)
        check_output_dir(self.out)

    def settings(self) -> list[InversionSettings]:
        """One InversionSettings per requested protocol; an option given on the command line makes each a variant."""
        changes = dict(
            steps=self.steps,
            learning_rate=self.lr,
            final_lr_fraction=self.lr_end_fraction,
            schedule=self.schedule,
            optimizer=self.optimizer,
            loss=self.loss,
            decode=self.decode,
            top_k=self.top_k,
            seed=self.seed,
        )
        if not self.protocols or len(set(self.protocols)) != len(self.protocols):
            raise UserError(f"--protocol: give each of {', '.join(PROTOCOLS)} at most once (got {self.protocols})")
        try:
            return [protocol_settings(name, **changes) for name in self.protocols]
        except ValueError as err:
            raise UserError(str(err)) from None


# --- models ---------------------------------------------------------------------------------


def _parse_source(source: str) -> tuple[Path, bool]:
    """MODEL argument -> (path, untrained requested)."""
    untrained = source.startswith(UNTRAINED)
    return Path(source.removeprefix(UNTRAINED)), untrained


def _is_yaml(path: Path) -> bool:
    return path.suffix in (".yaml", ".yml")


def declared_length(source: str, overrides: list[str]) -> int:
    """The longest input a MODEL takes (mixer seq_len, Llama max_position_embeddings), read without building it."""
    path, _ = _parse_source(source)
    if _is_yaml(path):
        return load_run_config(path, overrides).model.seq_len
    if not (path / "config.json").is_file():
        raise UserError(f"{path}: not a run config YAML or a saved model directory (no config.json)")
    return context_length(load_model_config(path))


def load_probe_model(
    source: str, overrides: list[str], vocab_size: int | None, trust_remote_code: bool = False
) -> dict:
    """One MODEL argument -> {label, source, trained, model}; untrained models use the current torch seed."""
    path, untrained = _parse_source(source)
    if _is_yaml(path):
        run = load_run_config(path, overrides)
        model, _ = build_model(run.model, vocab_size)
        return dict(label=f"{run.model.label} (untrained)", source=source, trained=False, model=model)
    if untrained:
        model = AutoModelForCausalLM.from_config(
            load_model_config(path, trust_remote_code), trust_remote_code=trust_remote_code
        )
    else:
        model, _ = load_run(path, trust_remote_code=trust_remote_code)
    return dict(
        label=f"{path.name} ({'untrained' if untrained else 'trained'})",
        source=source,
        trained=not untrained,
        model=model,
    )


def _first_model_dir(sources: list[str]) -> Path | None:
    for source in sources:
        path, _ = _parse_source(source)
        if path.is_dir():
            return path
    return None


# --- inputs ---------------------------------------------------------------------------------


def _ids_from_file(path: str, seq_len: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids (n, t), attention_mask (n, t)) from a JSON list of id lists, right-padded to the longest
    (t <= seq_len)."""
    try:
        rows = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: cannot read token ids ({err})") from None
    if (
        not isinstance(rows, list)
        or not rows
        or not all(
            isinstance(r, list) and r and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in r)
            for r in rows
        )
    ):
        raise UserError(f"{path}: expected a JSON list of non-empty lists of token ids (integers >= 0)")
    rows = [r[:seq_len] for r in rows[:n]]
    ids = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


def load_inputs(request: RepresentRequest, seq_len: int) -> tuple[torch.Tensor, torch.Tensor, dict, int]:
    """(input_ids (n, t), attention_mask (n, t), description, vocab size) from ids, data or text.

    The vocab size (the tokenizer's, or max id + 1 for ids) sizes run-config models whose
    model.vocab_size is null.
    """
    if request.ids:
        ids, mask = _ids_from_file(request.ids, seq_len, request.num_texts)
        return ids, mask, dict(ids=request.ids), int(ids.max()) + 1
    from ..data import (
        first_examples,
        load_corpus,
        load_tokenizer,
        prepare_data,
    )  # only these two input modes need the data pipeline

    if request.data:
        run = load_run_config(request.data, request.overrides)
        prepared = prepare_data(run.data, seq_len)
        examples = first_examples(prepared.eval, request.num_texts)  # columns as (n, L) tensors
        return examples["input_ids"], examples["attention_mask"], dict(data=request.data), len(prepared.tokenizer)
    tokenizer_spec = request.tokenizer or _first_model_dir(request.models)
    if tokenizer_spec is None:
        raise UserError("--text needs --tokenizer when no MODEL is a saved model directory")
    tokenizer = load_tokenizer(str(tokenizer_spec))
    corpus = load_corpus(
        request.text,
        split=request.split,
        text_field=request.text_field,
        lowercase=request.lowercase,
        max_documents=4 * request.num_texts,
    )
    texts = [t for t in corpus["text"] if t.strip()][: request.num_texts]
    if not texts:
        raise UserError(f"{request.text}: no non-empty texts in field {request.text_field!r}")
    batch = tokenizer(
        texts, truncation=True, max_length=seq_len, padding="max_length", return_tensors="pt"
    )  # (n, seq_len)
    return (
        batch["input_ids"],
        batch["attention_mask"],
        dict(text=request.text, tokenizer=str(tokenizer_spec)),
        len(tokenizer),
    )


# --- the probe ------------------------------------------------------------------------------


def probe_models(
    entries: list[dict],
    input_ids,
    attention_mask,
    blocks: list[int] | None,
    protocols: list[InversionSettings],
    batch_size: int,
) -> list[dict]:
    """Run the probe for every model at every requested block it has, under every protocol; one progress bar
    over all steps."""
    plans = []
    for entry in entries:
        depth = entry["model"].config.num_hidden_layers
        wanted = blocks or [depth]
        skipped = [b for b in wanted if not 0 <= b <= depth]
        if skipped and len(skipped) == len(wanted):  # nothing left to probe: an empty report would look like a result
            raise UserError(
                f"{entry['source']}: has {depth} blocks; --blocks {' '.join(map(str, skipped))} asks for none of them"
            )
        if skipped:
            print(f"{entry['label']}: has {depth} blocks, skipping block(s) {skipped}")
        plans.append((entry, [b for b in wanted if 0 <= b <= depth]))
    batches = math.ceil(input_ids.shape[0] / batch_size)
    total = sum(len(bs) for _, bs in plans) * batches * sum(s.steps for s in protocols)
    reports = []
    with progress_bar(total=total, desc="represent", unit="step") as bar:

        def on_step(loss: float) -> None:
            bar.update(1)
            if bar.n % 25 == 0:
                bar.set_postfix(loss=f"{loss:.3g}")

        for entry, model_blocks in plans:
            model = entry["model"]
            if int(input_ids.max()) >= model.config.vocab_size:
                raise UserError(
                    f"{entry['source']}: input token id {int(input_ids.max())} is outside the model's vocab "
                    f"of {model.config.vocab_size}"
                )
            results = []
            for settings in protocols:
                for block in model_blocks:
                    bar.set_description(f"{entry['label']} block {block} {settings.protocol}")
                    try:
                        result = representation_accuracy(
                            model, input_ids, attention_mask, block, settings, batch_size, on_step
                        )
                    except ValueError as err:
                        raise UserError(f"{entry['source']}: {err}") from None
                    results.append(dict(result.to_dict(), protocol=settings.protocol))
            info = {k: v for k, v in entry.items() if k != "model"}
            reports.append(
                dict(
                    info,
                    model_type=model.config.model_type,
                    num_hidden_layers=model.config.num_hidden_layers,
                    parameters=count_parameters(model).total,
                    results=results,
                )
            )
    return reports


def run_represent(request: RepresentRequest) -> dict:
    """Probe every model on the same inputs; writes represent.json, represent.md and represent.png into
    request.out, returns the report."""
    request.validate()
    protocols = request.settings()
    seq_len = min(
        [declared_length(m, request.overrides) for m in request.models] + ([request.seq_len] if request.seq_len else [])
    )
    input_ids, attention_mask, described, vocab = load_inputs(request, seq_len)
    torch.manual_seed(request.seed)
    entries = [
        load_probe_model(source, request.overrides, vocab, request.trust_remote_code) for source in request.models
    ]
    device = resolve_device(request.device)
    for entry in entries:
        entry["model"].to(device)  # representation_accuracy moves each batch to its model's device
    reports = probe_models(entries, input_ids, attention_mask, request.blocks, protocols, request.batch_size)
    report = dict(
        protocols=[dataclasses.asdict(s) for s in protocols],
        inputs=dict(
            described,
            num_texts=int(input_ids.shape[0]),
            seq_len=int(input_ids.shape[1]),
            num_tokens=int(attention_mask.sum()),
        ),
        models=reports,
    )
    paths = write_representation_report(report, Path(request.out))
    print_representation(report)
    print("wrote " + ", ".join(map(str, paths)))
    return report


__all__ = ["RepresentRequest", "declared_length", "load_inputs", "load_probe_model", "probe_models", "run_represent"]
