"""Mixer vs transformer autoencoder gap on a TinyStories slice, trained by `masked_mixers.training.train`.

A stopgap until `masked-mixers compare` takes the autoencoding task: it tokenizes the slice itself
(a byte-level BPE trained on the training slice, one story per example, truncated to L and right
padded) instead of going through the data package, trains every model for the same steps on the
same batches, and prints reconstruction loss, token accuracy and exact match on the training slice
and on held-out stories.

    OMP_NUM_THREADS=2 python scripts/autoencoder_gap.py TRAIN.jsonl EVAL.jsonl --steps 200 --seq-len 64 \
        --hidden-size 64 --layers 2 --vocab-size 1024 --families mixer_autoencoder llama_autoencoder llama_autoencoder:paper
"""

import argparse
import json
import math
from pathlib import Path
from types import SimpleNamespace

import torch
from datasets import Dataset
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerFast, default_data_collator

from masked_mixers.config import DataConfig, ModelSpec, RunConfig, TrainConfig
from masked_mixers.metrics import evaluate_reconstruction
from masked_mixers.training import train


def read_stories(path: str, limit: int) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line)["text"].lower() for line, _ in zip(handle, range(limit))]


def bpe_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<eos>"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


def examples(tokenizer, texts: list[str], seq_len: int) -> Dataset:
    enc = tokenizer(texts, max_length=seq_len, truncation=True, padding="max_length")
    labels = [[t if m else -100 for t, m in zip(ids, mask)] for ids, mask in zip(enc["input_ids"], enc["attention_mask"])]
    return Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels})


def score(model, dataset: Dataset, batch_size: int = 64) -> dict:
    loader = DataLoader(dataset.with_format("torch"), batch_size=batch_size, collate_fn=default_data_collator)
    return evaluate_reconstruction(model, loader)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train_file")
    parser.add_argument("eval_file")
    parser.add_argument("--train-stories", type=int, default=4000)
    parser.add_argument("--eval-stories", type=int, default=256)
    parser.add_argument("--vocab-size", type=int, default=1024)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, nargs="*", default=None, help="one per family (default 5e-3 mixer, 2e-3 llama)")
    parser.add_argument("--families", nargs="+", default=["mixer_autoencoder", "llama_autoencoder", "llama_autoencoder:paper"])
    parser.add_argument("--out", default="runs/autoencoder-gap")
    args = parser.parse_args()

    train_texts = read_stories(args.train_file, args.train_stories)
    tokenizer = bpe_tokenizer(train_texts, args.vocab_size)
    train_set = examples(tokenizer, train_texts, args.seq_len)
    eval_set = examples(tokenizer, read_stories(args.eval_file, args.eval_stories), args.seq_len)
    prepared = SimpleNamespace(train=train_set, eval=None, tokenizer=tokenizer)
    for i, name in enumerate(args.families):
        family, _, variant = name.partition(":")
        lr = args.lr[i] if args.lr else (5e-3 if family.startswith("mixer") else 2e-3)
        spec = ModelSpec(
            family=family, hidden_size=args.hidden_size, num_hidden_layers=args.layers, seq_len=args.seq_len,
            decoder_position_embedding=variant != "paper",
        )
        run = RunConfig(
            model=spec, data=DataConfig(),
            train=TrainConfig(
                output_dir=str(Path(args.out) / name.replace(":", "-")), max_steps=args.steps, batch_size=args.batch_size,
                learning_rate=lr, warmup_steps=args.steps // 20, eval_steps=0, save_steps=0, logging_steps=max(args.steps // 10, 1),
            ),
        )
        result = train(run, prepared, resume=False)
        row = {"model": name, "params": result.parameters.total, "lr": lr, "last_logged_loss": next((h["loss"] for h in reversed(result.history) if "loss" in h), None)}
        for split, data in (("train", train_set.select(range(min(512, len(train_set))))), ("heldout", eval_set)):
            row.update({f"{split}_{k}": round(v, 4) for k, v in score(result.model, data).items()})
        row["seconds"] = round(result.train_seconds, 1)
        print("RESULT", json.dumps(row), flush=True)


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
