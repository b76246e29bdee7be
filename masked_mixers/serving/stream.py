"""Token ids -> text deltas, a constant amount of work per token, for the engine's rows.

`Detokenizer` decodes incrementally (the scheme vLLM and text-generation-inference use): it keeps
two offsets into the ids, decodes only the window since the last complete text, and appends the
new characters; a byte-level BPE character split over several tokens (an incomplete UTF-8
sequence decodes as U+FFFD) waits for its next token. Decoding the whole text at every step, as
this server did before, made a long stream cost quadratic time.

`RowTracker` is a transformers `StoppingCriteria`: generate() calls it after every decoding step
with the step's tokens as the last column of `input_ids` (b, w). For each row it appends the token
to its job, decodes, looks for the job's stop strings in the new characters only, sends the safe
part of the text (a stop string that may still be forming is held back), and says which rows are
done: EOS, a stop string, `max_tokens`, a cancelled job (its client went away, or the server is
shutting down) or a job past its deadline. A done row stops decoding at this step; generate()
ends when every row is done.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from transformers import PreTrainedTokenizerBase, StoppingCriteria


class Detokenizer:
    """Text of a growing list of token ids, decoded a few ids at a time: `add` returns the new characters."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self._prefix = 0  # ids[_prefix:_read] decode to the last characters already returned (context for the next)
        self._read = 0

    def add(self, token: int, final: bool = False) -> str:
        self.ids.append(token)
        return self._catch_up(final)

    def finish(self) -> str:
        """Whatever is still held back (an incomplete character at the very end decodes as U+FFFD)."""
        return self._catch_up(final=True)

    def _catch_up(self, final: bool) -> str:
        if self._read == len(self.ids):
            return ""
        decode = self.tokenizer.decode
        before = decode(self.ids[self._prefix : self._read], skip_special_tokens=True)
        after = decode(self.ids[self._prefix :], skip_special_tokens=True)
        if len(after) <= len(before) or (after.endswith("\ufffd") and not final):
            return ""
        self._prefix, self._read = self._read, len(self.ids)
        return after[len(before) :]


def find_stop(text: str, stops: tuple[str, ...]) -> int:
    """Index of the first stop string in `text` (-1: none)."""
    return min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)


class JobText:
    """One job's side of decoding: appends each token, sends text deltas and its end (`job.finished`).

    A job keeps only its unsent characters (`pending`: the last delta and at most the longest stop
    string less one character held back), so a step costs the same at token 10 and at token 10,000.
    `describe(job)` gives a finished job's logprobs object. Both batching modes use it: `RowTracker`
    (a static batch, inside generate()) and `continuous.ContinuousBatch` (its own decoding loop).
    """

    def __init__(self, job, tokenizer: PreTrainedTokenizerBase, describe: Callable):
        self.job, self.tokenizer, self.describe = job, tokenizer, describe
        self.text = Detokenizer(tokenizer)
        self.pending = ""

    def step(self, token: int, now: float, stopping: bool, logprobs: torch.Tensor | None = None) -> bool:
        """Take the job's next token (and its (vocab,) log-probabilities when the job asked); True once it is done."""
        job = self.job
        if job.finished:
            return True
        if logprobs is not None and job.logprobs is not None:
            job.record_logprobs(token, logprobs)
        if stopping or job.cancelled:
            job.fail("the request was cancelled", 499)
        elif now > job.deadline:
            job.fail(f"the request ran past this server's limit of {job.timeout_s:g} s (--request-timeout)", 504)
        elif token == self.tokenizer.eos_token_id:
            self._send(self.pending + self.text.finish(), "stop")
        else:
            self._continue(token)
        return job.finished

    def end(self) -> None:
        """Decoding ended with the job still open: it ran out of steps (max_tokens)."""
        if not self.job.finished:
            self._send(self.pending + self.text.finish(), "length")

    def _continue(self, token: int) -> None:
        job = self.job
        job.completion_tokens += 1
        final = job.completion_tokens >= job.sampling.max_tokens
        pending = self.pending + self.text.add(token, final=final)
        stops = job.sampling.stop
        cut = find_stop(pending, stops) if stops else -1
        if cut >= 0 or final:
            self._send(pending[:cut] if cut >= 0 else pending, "stop" if cut >= 0 else "length")
            return
        hold = max((len(s) - 1 for s in stops), default=0)  # a stop string may be forming at the end
        ready = len(pending) - hold
        if ready > 0:
            self._send(pending[:ready], None)
            pending = pending[ready:]
        self.pending = pending

    def _send(self, text: str, finish_reason: str | None) -> None:
        if text:
            self.job.text(text)
        if finish_reason is not None:
            self.job.done(finish_reason, self.describe(self.job))


class RowTracker(StoppingCriteria):
    """A static batch's jobs, one per row: `JobText.step` for each row's token; True for rows that are done.

    `step_logprobs()` gives the (b, vocab) log-probabilities of the step just decoded (or None when no
    job asked for logprobs), `describe(job)` a finished job's logprobs object; `stopping()` says the
    server is shutting down.
    """

    def __init__(
        self,
        jobs: list,
        tokenizer: PreTrainedTokenizerBase,
        step_logprobs: Callable,
        describe: Callable,
        stopping: Callable,
    ):
        self.rows = [JobText(job, tokenizer, describe) for job in jobs]
        self.step_logprobs, self.stopping = step_logprobs, stopping

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor | None = None, **kwargs) -> torch.Tensor:
        logprobs = self.step_logprobs()
        now, stopping = time.monotonic(), self.stopping()
        done = [
            row.step(token, now, stopping, None if logprobs is None else logprobs[i])
            for i, (row, token) in enumerate(zip(self.rows, input_ids[:, -1].tolist()))
        ]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    def end(self) -> None:
        """After generate(): a row still open ran out of steps (max_tokens)."""
        for row in self.rows:
            row.end()


__all__ = ["Detokenizer", "JobText", "RowTracker", "find_stop"]
