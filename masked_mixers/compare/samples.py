"""What a report shows of each model's output: for language models, text for the same prompts
(greedy and one seeded sample); for autoencoders, the same held-out examples rebuilt."""

from __future__ import annotations

import torch

from ..data.examples import first_examples
from ..models import family_of
from ..objectives import completion_settings, one_step_ids
from ..training.metrics import IGNORE_INDEX
from .config import ReportConfig


def _prompt_ids(tokenizer, prompt: str, seq_len: int, add_bos: bool) -> list[int]:
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if add_bos and tokenizer.bos_token_id is not None:
        ids = [tokenizer.bos_token_id, *ids]
    return ids[-(seq_len // 2) :]  # leave room to generate within the model's fixed length L


def _one_step_samples(model, tokenizer, seq_len: int, settings: ReportConfig, add_bos: bool) -> list[dict[str, str]]:
    """A completion model's L/2 tokens after each prompt, from one forward pass (argmax: no sample)."""
    was_training = model.training
    model.eval()
    prompts = [_prompt_ids(tokenizer, p, seq_len, add_bos) for p in settings.prompts]
    rows = one_step_ids(model, prompts, tokenizer.pad_token_id or 0).tolist()
    model.train(was_training)
    return [
        {
            "prompt": p,
            "greedy": tokenizer.decode(r, skip_special_tokens=True),
            "sample": "(one-step completion: argmax only)",
        }
        for p, r in zip(settings.prompts, rows)
    ]


@torch.no_grad()
def generate_samples(
    model, tokenizer, seq_len: int, settings: ReportConfig, add_bos: bool = False
) -> list[dict[str, str]]:
    """[{prompt, greedy, sample}] for settings.prompts; new tokens stay within seq_len (L).

    Bidirectional models (`predicts_in_place`) read the tokens after the one they predict, so
    they cannot continue a prompt: they get no samples.
    """
    if family_of(model).capabilities.predicts_in_place:
        return []
    if completion_settings(model):
        return _one_step_samples(model, tokenizer, seq_len, settings, add_bos)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    samples = []
    for prompt in settings.prompts:
        ids = _prompt_ids(tokenizer, prompt, seq_len, add_bos)
        input_ids = torch.tensor([ids], device=device)  # (1, t)
        common = dict(
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max(1, min(settings.max_new_tokens, seq_len - len(ids))),
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        greedy = model.generate(input_ids, do_sample=False, **common)
        torch.manual_seed(settings.sample_seed)
        sampled = model.generate(
            input_ids, do_sample=True, temperature=settings.temperature, top_k=settings.top_k, **common
        )
        new = slice(len(ids), None)  # the generated tokens, after the prompt
        samples.append(
            {
                "prompt": prompt,
                "greedy": tokenizer.decode(greedy[0, new], skip_special_tokens=True),
                "sample": tokenizer.decode(sampled[0, new], skip_special_tokens=True),
            }
        )
    model.train(was_training)
    return samples


@torch.no_grad()
def reconstruction_samples(model, tokenizer, dataset, count: int) -> list[dict]:
    """[{input, reconstruction, token_accuracy}] for the first `count` examples of `dataset`.

    Both texts cover the scored positions only (labels != -100, so no pads); the reconstruction
    is the autoencoder's argmax token at each of them, decoded.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in first_examples(dataset, count).items()}  # column -> (count, L)
    predicted = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.argmax(
        -1
    )  # (count, L)
    samples = []
    for labels, ids in zip(batch["labels"], predicted):
        scored = labels != IGNORE_INDEX  # (L,)
        samples.append(
            {
                "input": tokenizer.decode(labels[scored], skip_special_tokens=True),
                "reconstruction": tokenizer.decode(ids[scored], skip_special_tokens=True),
                "token_accuracy": float((ids[scored] == labels[scored]).float().mean())
                if scored.any()
                else float("nan"),
            }
        )
    model.train(was_training)
    return samples
