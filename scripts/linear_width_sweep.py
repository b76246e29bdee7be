"""Eval loss against width (d_model) for linear, near-linear and ordinary masked mixers.

A small, CPU-sized version of the paper's linear-mixer experiment: every model trains the same
number of steps on the same packed TinyStories blocks (a byte-level BPE trained on the slice),
through `masked_mixers.training.train.train`, and is evaluated on held-out stories.

  OMP_NUM_THREADS=1 PYTHONPATH=. python scripts/linear_width_sweep.py \
      --train ../shared/data/tinystories/train-lowercase.jsonl \
      --eval ../shared/data/tinystories/valid-lowercase.jsonl --widths 32 64 128
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

from datasets import Dataset
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from masked_mixers.runs.config import ModelSpec, RunConfig, TrainConfig
from masked_mixers.training.train import train

# label -> ModelSpec fields
KINDS = {
    "linear": dict(family="linear_mixer", linear_variant="linear"),
    "relu": dict(family="linear_mixer", linear_variant="relu"),
    "near_linear": dict(family="linear_mixer", linear_variant="near_linear"),
    "mixer": dict(family="mixer", mixer_type="flat"),
}


def read_texts(path: str, limit: int) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line, _ in zip(handle, range(limit))]


def byte_level_bpe(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<eos>"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


def packed_blocks(tokenizer, texts: list[str], seq_len: int) -> Dataset:
    """Documents end to end (each followed by eos), cut into seq_len-token blocks."""
    ids = [t for text in texts for t in tokenizer(text)["input_ids"] + [tokenizer.eos_token_id]]
    blocks = [ids[i : i + seq_len] for i in range(0, len(ids) - seq_len + 1, seq_len)]
    return Dataset.from_dict({"input_ids": blocks, "attention_mask": [[1] * seq_len] * len(blocks), "labels": blocks})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", required=True)
    p.add_argument("--eval", required=True)
    p.add_argument("--train-docs", type=int, default=2000)
    p.add_argument("--eval-docs", type=int, default=200)
    p.add_argument("--vocab-size", type=int, default=2048)
    p.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128])
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--output-dir", default="runs/linear-width-sweep")
    args = p.parse_args()

    train_texts = read_texts(args.train, args.train_docs)
    tokenizer = byte_level_bpe(train_texts, args.vocab_size)
    prepared = SimpleNamespace(
        tokenizer=tokenizer,
        train=packed_blocks(tokenizer, train_texts, args.seq_len),
        eval=packed_blocks(tokenizer, read_texts(args.eval, args.eval_docs), args.seq_len),
    )
    rows = []
    for kind in args.kinds:
        for width in args.widths:
            spec = ModelSpec(
                name=f"{kind}-d{width}",
                hidden_size=width,
                num_hidden_layers=args.layers,
                seq_len=args.seq_len,
                **KINDS[kind],
            )
            run = RunConfig(
                model=spec,
                train=TrainConfig(
                    output_dir=str(Path(args.output_dir) / spec.label),
                    max_steps=args.steps,
                    batch_size=args.batch_size,
                    learning_rate=args.learning_rate,
                    warmup_steps=args.steps // 10,
                    eval_steps=0,
                    save_steps=0,
                    logging_steps=max(args.steps // 5, 1),
                    report_to=[],
                ),
            )
            result = train(run, prepared, resume=False)
            rows.append((kind, width, result.parameters.non_embedding, result.train_loss, result.eval_metrics["loss"]))
            print(f"{kind:12s} d={width:4d} eval loss {rows[-1][-1]:.3f}", flush=True)
    print(
        f"\n{args.layers} layers, L={args.seq_len}, {args.steps} steps x {args.batch_size} blocks, "
        f"{len(prepared.train)} train / {len(prepared.eval)} eval blocks, vocab {len(tokenizer)}"
    )
    print(f"{'kind':12s} {'d_model':>7s} {'non-emb params':>14s} {'train loss':>10s} {'eval loss':>9s}")
    for kind, width, params, train_loss, eval_loss in rows:
        print(f"{kind:12s} {width:7d} {params:14,d} {train_loss:10.3f} {eval_loss:9.3f}")


if __name__ == "__main__":
    main()
