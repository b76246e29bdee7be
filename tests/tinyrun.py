"""A tiny saved run directory (random masked mixer + a BPE tokenizer trained on real stories) for serving/eval tests."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from conftest import VALID
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from masked_mixers import MaskedMixerConfig, MaskedMixerForCausalLM


def stories(n: int, skip: int = 0) -> list[str]:
    lines = VALID.read_text(encoding="utf-8").splitlines()[skip : skip + n]
    return [json.loads(line)["text"] for line in lines]


def tokenizer(padding_side: str = "right") -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<pad>", "<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(stories(200), trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", bos_token="<eos>")
    tok.padding_side = padding_side
    return tok


def make_run(path: Path, seq_len: int = 32, seed: int = 0) -> Path:
    """Save a random flat masked mixer (d=16, 2 layers, L=seq_len) and its tokenizer to `path`."""
    tok = tokenizer()
    torch.manual_seed(seed)
    config = MaskedMixerConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=2, seq_len=seq_len)
    MaskedMixerForCausalLM(config).eval().save_pretrained(path)
    tok.save_pretrained(path)
    return path
