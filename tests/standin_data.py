"""A small stand-in for `masked_mixers.data.prepare_data` (being written elsewhere): a BPE tokenizer
trained with `tokenizers` on a few hundred TinyStories lines, and fixed-length examples with the
columns the real pipeline produces (input_ids, attention_mask, labels with -100 at pads, num_bytes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

from conftest import SHARED
from datasets import Dataset
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

DATA = SHARED / "tinystories"


@dataclass
class StandinPrepared:
    train: Dataset
    eval: Dataset
    tokenizer: PreTrainedTokenizerFast


@cache
def _texts(name: str, n: int) -> tuple[str, ...]:
    with open(DATA / name, encoding="utf-8") as handle:
        return tuple(json.loads(line)["text"] for _, line in zip(range(n), handle))


@cache
def _tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_texts("train-lowercase.jsonl", 300), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


def _examples(texts, tokenizer, seq_len: int) -> Dataset:
    rows = {"input_ids": [], "attention_mask": [], "labels": [], "num_bytes": []}
    for text in texts:
        ids = (tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])[:seq_len]
        pad = seq_len - len(ids)
        rows["input_ids"].append(ids + [tokenizer.pad_token_id] * pad)
        rows["attention_mask"].append([1] * len(ids) + [0] * pad)
        rows["labels"].append(ids + [-100] * pad)
        rows["num_bytes"].append(len(tokenizer.decode(ids[1:], skip_special_tokens=True).encode("utf-8")))
    return Dataset.from_dict(rows)


def prepare_standin(
    data=None, seq_len: int = 32, n_train: int = 300, n_eval: int = 40, vocab_size: int = 512
) -> StandinPrepared:
    """Same call shape as prepare_data(data, seq_len); `data` is ignored."""
    tokenizer = _tokenizer(vocab_size)
    return StandinPrepared(
        train=_examples(_texts("train-lowercase.jsonl", n_train), tokenizer, seq_len),
        eval=_examples(_texts("valid-lowercase.jsonl", n_eval), tokenizer, seq_len),
        tokenizer=tokenizer,
    )
