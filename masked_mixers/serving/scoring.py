"""Log-probabilities for the completions API: `logprobs` (top-k per token) and `echo` with logprobs.

Every number is the model's own log-softmax over its raw logits (before temperature, top-k/p or
repetition penalty change the sampling distribution), in float32:

- a generated token: the logits generate() decodes that step from (`StepLogprobs`, a forward hook
  on the model that keeps the last position of the last forward: (b, vocab), one step at a time);
- a prompt token (echo): one forward over the prompt alone (`prompt_logprobs`, batch 1, no
  padding, positions 0..t-1 as in training), token i scored from position i - 1; the first token
  has no score (null, as OpenAI answers).

`openai_logprobs` writes them in OpenAI's legacy completions shape: `tokens`, `token_logprobs`,
`top_logprobs` ({token text: log-prob}, best first) and `text_offset`. lm-eval's
`local-completions` model reads `token_logprobs` and `top_logprobs` of an echoed prompt plus one
generated token to compute log-likelihoods.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

MAX_LOGPROBS = 5  # as OpenAI's completions API


@dataclass
class Scored:
    """One token's score: its id, log-probability (None: the first prompt token) and the top-k (id, log-prob)."""

    token: int
    logprob: float | None
    top: list[tuple[int, float]] | None


def score(token: int, logprobs: torch.Tensor, k: int) -> Scored:
    """`token`'s entry of a (vocab,) log-softmax, and its k best entries."""
    values, ids = logprobs.topk(k) if k else (logprobs[:0], logprobs[:0].long())
    return Scored(token, float(logprobs[token]), list(zip(ids.tolist(), values.tolist())))


class StepLogprobs:
    """While active, keeps the (b, vocab) log-softmax of the last position of each model forward."""

    def __init__(self, model: PreTrainedModel, active: bool):
        self.model, self.active = model, active
        self.last: torch.Tensor | None = None
        self._handle = None

    def __enter__(self) -> StepLogprobs:
        if self.active:
            self._handle = self.model.register_forward_hook(self._keep)
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.remove()
        self.last = None

    def _keep(self, _module, _args, output) -> None:
        self.last = output.logits[:, -1].float().log_softmax(-1)  # (b, vocab): what generate() decodes this step from

    def __call__(self) -> torch.Tensor | None:
        return self.last


def prompt_logprobs(model: PreTrainedModel, ids: list[int], k: int) -> list[Scored]:
    """Each prompt token scored from the tokens before it (the first: no score), one forward over the prompt."""
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids], device=model.device)).logits[0]  # (t, vocab)
        logprobs = logits[:-1].float().log_softmax(-1)  # (t - 1, vocab): row i predicts token i + 1
        return [Scored(ids[0], None, None)] + [score(t, row, k) for t, row in zip(ids[1:], logprobs)]


def openai_logprobs(tokenizer: PreTrainedTokenizerBase, scored: list[Scored], offset: int) -> dict:
    """OpenAI's `logprobs` object for `scored` tokens whose text starts at character `offset` of the answer."""
    text = [tokenizer.decode([s.token]) for s in scored]
    offsets = []
    for piece in text:
        offsets.append(offset)
        offset += len(piece)
    tops = []
    for s in scored:
        if s.top is None:
            tops.append(None)
            continue
        top: dict[str, float] = {}
        for token, logprob in s.top:  # best first; two ids with one text keep the better
            top.setdefault(tokenizer.decode([token]), logprob)
        tops.append(top)
    return {"tokens": text, "token_logprobs": [s.logprob for s in scored], "top_logprobs": tops, "text_offset": offsets}


__all__ = ["MAX_LOGPROBS", "Scored", "StepLogprobs", "openai_logprobs", "prompt_logprobs", "score"]
