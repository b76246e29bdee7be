"""Input representation accuracy (Badger, arXiv 2409.01482): how much of its input a model keeps.

For real inputs, the hidden state after a block is the target; starting from random embeddings,
gradient descent on the input alone (model frozen) reproduces it, and the recovered embeddings
are decoded to tokens. The modified Hamming metric is the fraction of real positions whose true
token is not among the top k decoded tokens: 0 = the block kept its whole input, 1 = nothing.

MODEL is any of
  runs/x.yaml          an untrained model of the run config's model section (--set overrides apply)
  runs/x/              a saved model directory (trained)
  untrained:runs/x/    the directory's architecture with fresh weights

Inputs come from --data RUN.yaml (its prepared eval split), --text SOURCE (a corpus file or hub
id, tokenized with --tokenizer or the first model directory's tokenizer), or --ids FILE (a JSON
list of token-id lists). Writes represent.json and represent.png into --out.

  masked-mixers represent mixer.yaml llama.yaml --text stories.jsonl --tokenizer tok.json --blocks 1 2
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModelForCausalLM

from ..config import load_run_config
from ..errors import UserError
from ..factory import build_model, count_parameters
from ..files import atomic_write_text
from ..probes.representation import DECODERS, LOSSES, OPTIMIZERS, SCHEDULES, InversionSettings, representation_accuracy
from ..rundir import load_run

UNTRAINED = "untrained:"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="+", metavar="MODEL", help="run config YAML, model directory, or untrained:DIR")
    inputs = parser.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--data", metavar="RUN.yaml", help="take inputs from this run config's prepared eval split")
    inputs.add_argument("--text", metavar="SOURCE", help="corpus file or hub dataset id to take inputs from")
    inputs.add_argument("--ids", metavar="FILE", help="JSON list of token-id lists")
    parser.add_argument("--tokenizer", help="tokenizer for --text (default: the first model directory's)")
    parser.add_argument("--split", default="validation", help="split of a hub --text corpus")
    parser.add_argument("--text-field", default="text")
    parser.add_argument("--lowercase", action="store_true", help="lowercase --text before tokenizing")
    parser.add_argument("--num-texts", type=int, default=16, help="how many input sequences")
    parser.add_argument("--seq-len", type=int, help="tokens per input (default: the shortest model length)")
    parser.add_argument("--blocks", type=int, nargs="+", help="probe after these blocks, 1 = first (default: each model's last)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--lr", type=float, default=InversionSettings.learning_rate, help="in units of the embedding std")
    parser.add_argument("--schedule", choices=SCHEDULES, default="cosine")
    parser.add_argument("--optimizer", choices=tuple(OPTIMIZERS), default="adam")
    parser.add_argument("--loss", choices=LOSSES, default="l1")
    parser.add_argument("--decode", choices=DECODERS, default="pinv", help="pseudo-inverse of the embedding, or nearest embedding")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override in every run config YAML")
    parser.add_argument("--out", default="runs/represent", help="output directory")


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
    config = AutoConfig.from_pretrained(path)
    return getattr(config, "seq_len", None) or config.max_position_embeddings


def load_probe_model(source: str, overrides: list[str], vocab_size: int | None) -> dict:
    """One MODEL argument -> {label, source, trained, model}; untrained models use the current torch seed."""
    path, untrained = _parse_source(source)
    if _is_yaml(path):
        run = load_run_config(path, overrides)
        model, _ = build_model(run.model, vocab_size)
        return dict(label=f"{run.model.label} (untrained)", source=source, trained=False, model=model)
    if untrained:
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
    else:
        model, _ = load_run(path)
    return dict(label=f"{path.name} ({'untrained' if untrained else 'trained'})", source=source, trained=not untrained, model=model)


def _first_model_dir(sources: list[str]) -> Path | None:
    for source in sources:
        path, _ = _parse_source(source)
        if path.is_dir():
            return path
    return None


# --- inputs ---------------------------------------------------------------------------------


def _ids_from_file(path: str, seq_len: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        rows = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: cannot read token ids ({err})") from None
    if not isinstance(rows, list) or not all(isinstance(r, list) and r and all(isinstance(i, int) for i in r) for r in rows):
        raise UserError(f"{path}: expected a JSON list of non-empty lists of token ids")
    rows = [r[:seq_len] for r in rows[:n]]
    ids = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


def load_inputs(args, seq_len: int) -> tuple[torch.Tensor, torch.Tensor, dict, int]:
    """(input_ids (n, t), attention_mask (n, t), description, vocab size) from --ids, --data or --text.

    The vocab size (the tokenizer's, or max id + 1 for --ids) sizes run-config models whose
    model.vocab_size is null.
    """
    if args.ids:
        ids, mask = _ids_from_file(args.ids, seq_len, args.num_texts)
        return ids, mask, dict(ids=args.ids), int(ids.max()) + 1
    from ..data import load_corpus, load_tokenizer, prepare_data  # only these two input modes need the data pipeline

    if args.data:
        run = load_run_config(args.data, args.overrides)
        prepared = prepare_data(run.data, seq_len)
        examples = prepared.eval.select(range(min(args.num_texts, len(prepared.eval)))).with_format("torch")[:]  # columns as (n, L) tensors
        return examples["input_ids"], examples["attention_mask"], dict(data=args.data), len(prepared.tokenizer)
    tokenizer_spec = args.tokenizer or _first_model_dir(args.models)
    if tokenizer_spec is None:
        raise UserError("--text needs --tokenizer when no MODEL is a saved model directory")
    tokenizer = load_tokenizer(str(tokenizer_spec))
    corpus = load_corpus(args.text, split=args.split, text_field=args.text_field, lowercase=args.lowercase, max_documents=4 * args.num_texts)
    texts = [t for t in corpus["text"] if t.strip()][: args.num_texts]
    if not texts:
        raise UserError(f"{args.text}: no non-empty texts in field {args.text_field!r}")
    batch = tokenizer(texts, truncation=True, max_length=seq_len, padding="max_length", return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"], dict(text=args.text, tokenizer=str(tokenizer_spec)), len(tokenizer)


# --- the probe ------------------------------------------------------------------------------


def _settings(args) -> InversionSettings:
    try:
        return InversionSettings(
            steps=args.steps, learning_rate=args.lr, schedule=args.schedule, loss=args.loss,
            decode=args.decode, top_k=args.top_k, optimizer=args.optimizer, seed=args.seed,
        )  # fmt: skip
    except ValueError as err:
        raise UserError(str(err)) from None


def probe_models(entries: list[dict], input_ids, attention_mask, blocks: list[int] | None, settings: InversionSettings, batch_size: int) -> list[dict]:
    """Run the probe for every model at every requested block it has; one progress bar over all steps."""
    plans = []
    for entry in entries:
        depth = entry["model"].config.num_hidden_layers
        wanted = blocks or [depth]
        skipped = [b for b in wanted if not 0 <= b <= depth]
        if skipped:
            print(f"{entry['label']}: has {depth} blocks, skipping block(s) {skipped}")
        plans.append((entry, [b for b in wanted if 0 <= b <= depth]))
    batches = math.ceil(input_ids.shape[0] / batch_size)
    total = sum(len(bs) for _, bs in plans) * batches * settings.steps
    reports = []
    with tqdm(total=total, desc="represent", unit="step") as bar:
        def on_step(loss: float) -> None:
            bar.update(1)
            if bar.n % 25 == 0:
                bar.set_postfix(loss=f"{loss:.3g}")

        for entry, model_blocks in plans:
            model = entry["model"]
            if int(input_ids.max()) >= model.config.vocab_size:
                raise UserError(f"{entry['source']}: input token id {int(input_ids.max())} is outside the model's vocab of {model.config.vocab_size}")
            results = []
            for block in model_blocks:
                bar.set_description(f"{entry['label']} block {block}")
                results.append(representation_accuracy(model, input_ids, attention_mask, block, settings, batch_size, on_step).to_dict())
            info = {k: v for k, v in entry.items() if k != "model"}
            reports.append(dict(info, model_type=model.config.model_type, num_hidden_layers=model.config.num_hidden_layers,
                                parameters=count_parameters(model).total, results=results))  # fmt: skip
    return reports


def run(args) -> int:
    from ..probes.plotting import plot_representation

    settings = _settings(args)
    seq_len = min([declared_length(m, args.overrides) for m in args.models] + ([args.seq_len] if args.seq_len else []))
    input_ids, attention_mask, described, vocab = load_inputs(args, seq_len)
    torch.manual_seed(args.seed)
    entries = [load_probe_model(source, args.overrides, vocab) for source in args.models]
    reports = probe_models(entries, input_ids, attention_mask, args.blocks, settings, args.batch_size)
    report = dict(
        settings=settings.__dict__,
        inputs=dict(described, num_texts=int(input_ids.shape[0]), seq_len=int(input_ids.shape[1]), num_tokens=int(attention_mask.sum())),
        models=reports,
    )
    out = Path(args.out)
    atomic_write_text(out / "represent.json", json.dumps(report, indent=1))
    plot_representation(report, out / "represent.png")
    for entry in reports:
        for r in entry["results"]:
            print(f"{entry['label']:<40} block {r['block']:>2}  hamming@{settings.top_k} {r['hamming']:.3f}  top-1 {r['top1']:.3f}  loss {r['final_loss']}")
    print(f"wrote {out / 'represent.json'} and {out / 'represent.png'}")
    return 0
