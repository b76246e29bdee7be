"""Continuous batching: a request joins the running batch at the next decoding step.

Served this way: families whose generation cache keeps every row at its own position
(`Capabilities.continuous_batching`: the masked and linear mixers). Their `MaskedMixerCache` holds,
per row, the token-mixing inputs of that row's window, and one decoding step advances rows that sit
at different positions. So a new request is prefilled alone (one forward over its prompt, laid out
as generation.py lays out any prompt), its one-row cache is joined to the batch's, and from the next
step on it decodes beside the others; a finished row's cache rows are dropped at once, so a long
request never holds a short one back and a short one never waits for a long one to end.

Every other family (Llama, GPT-2, the transfixer) is served in static batches through generate()
(engine.py): a request that arrives while a batch decodes waits for that batch to finish.
transformers' own continuous batching (`generate_batch`) needs paged attention caches, which a masked
mixer does not have, and generate() runs a fixed batch to its end; hence this loop, hand-written and
kept minimal: the model's own forward, transformers' logits processors per row (repetition penalty,
temperature, top-k, top-p, in generate()'s order), a random generator per seeded row (a seeded
request samples the same whatever else runs), and `stream.JobText` for text, stops and the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import (
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from ..generation import encode_prompts
from .rows import CachedRows, CompiledRows
from .stream import JobText


def logits_processors(sampling) -> tuple[bool, LogitsProcessorList]:
    """(greedy, processors) of an engine `Sampling`, as generate() would build them."""
    kwargs = sampling.generate_kwargs()
    processors = LogitsProcessorList()
    if kwargs["repetition_penalty"] != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(kwargs["repetition_penalty"]))
    if not kwargs["greedy"]:
        if kwargs["temperature"] != 1.0:
            processors.append(TemperatureLogitsWarper(kwargs["temperature"]))
        if kwargs["top_k"]:
            processors.append(TopKLogitsWarper(kwargs["top_k"]))
        if kwargs["top_p"] < 1.0:
            processors.append(TopPLogitsWarper(kwargs["top_p"]))
    return kwargs["greedy"], processors


@dataclass(eq=False)
class Row:
    """One request's row of the batch: its job's text, how it samples, and its next input token."""

    text: JobText
    greedy: bool
    processors: LogitsProcessorList
    generator: torch.Generator | None  # a seeded job's own; None: torch's global generator
    ids: list[int] = field(default_factory=list)  # prompt and tokens so far (read only by a repetition penalty)
    token: int = 0

    def sample(self, logits: torch.Tensor) -> int:
        """The next token from this row's (1, vocab) logits."""
        if self.processors:
            history = torch.tensor([self.ids], dtype=torch.long, device=logits.device)
            logits = self.processors(history, logits)
        if self.greedy:
            return int(logits.argmax(-1))
        return int(torch.multinomial(logits.softmax(-1), 1, generator=self.generator))


class ContinuousBatch:
    """The running rows and their joined cache; `admit` adds a job between steps, `step` decodes one token per row.

    `describe(job)` gives a finished job's logprobs object, `stopping()` says the server is shutting down.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        describe: Callable,
        stopping: Callable,
        cache_rows: CachedRows | CompiledRows | None = None,
    ):
        self.model, self.tokenizer, self.describe, self.stopping = model, tokenizer, describe, stopping
        self.rows: list[Row] = []
        self.cache_rows = cache_rows or CachedRows(model)  # the rows' cache and the step (rows.py)

    def __len__(self) -> int:
        return len(self.rows)

    @torch.inference_mode()
    def admit(self, job) -> None:
        """Prefill `job`'s prompt alone, take its first token, and join its row (unless that token ended it)."""
        inputs = encode_prompts(self.model, self.tokenizer, [job.prompt_ids], job.sampling.max_tokens)
        out = self.model(**inputs, use_cache=True, logits_to_keep=1)  # (1, 1, vocab)
        greedy, processors = logits_processors(job.sampling)
        generator = None
        if job.seed is not None:
            generator = torch.Generator(device=self.model.device).manual_seed(job.seed + job.choice)
        row = Row(JobText(job, self.tokenizer, self.describe), greedy, processors, generator, list(job.prompt_ids))
        if self._take(row, out.logits[:, -1], time.monotonic(), self.stopping()):
            return
        self.rows.append(row)
        self.cache_rows.add(out.cache)

    @torch.inference_mode()
    def step(self) -> None:
        """One token for every row; rows that finish leave the batch."""
        logits = self.cache_rows.logits([row.token for row in self.rows])  # (b, vocab)
        argmax = logits.argmax(-1).tolist()  # every row's greedy token, in one host sync
        now, stopping = time.monotonic(), self.stopping()
        keep = [
            i for i, row in enumerate(self.rows) if not self._take(row, logits[i : i + 1], now, stopping, argmax[i])
        ]
        if len(keep) < len(self.rows):
            self.rows = [self.rows[i] for i in keep]
            self.cache_rows.keep(keep)

    def fail(self, message: str, status: int) -> None:
        """End every row with an error (a failed step: the cache can no longer be trusted)."""
        for row in self.rows:
            if not row.text.job.finished:
                row.text.job.fail(message, status)
        self.rows = []
        self.cache_rows.keep([])

    def _take(self, row: Row, logits: torch.Tensor, now: float, stopping: bool, argmax: int | None = None) -> bool:
        """Sample the row's token from its (1, vocab) logits and hand it to its job; True once the job is done.
        argmax: the logits' argmax when already known (a greedy row without processors takes it)."""
        plain_greedy = row.greedy and not row.processors and argmax is not None
        token = argmax if plain_greedy else row.sample(logits.float())
        logprobs = logits[0].float().log_softmax(-1) if row.text.job.logprobs is not None else None
        done = row.text.step(token, now, stopping, logprobs)
        row.token = token
        if row.processors:
            row.ids.append(token)
        return done


__all__ = ["ContinuousBatch", "logits_processors"]
