"""The generation engine behind `masked-mixers serve`: one model, one worker thread, batched requests.

Requests (`Job`s) arrive from any number of HTTP handlers; the worker takes the oldest waiting
job and batches it with the other waiting jobs that decode the same way (same `Sampling`, no
seed), up to `max_batch_size`, then runs them through `generation.generate_ids` as one batch. The
prompt layout there makes every row's tokens independent of the others (a mixer's prompts keep
their positions; Llama's pads are masked), so a request gets the same greedy text alone or in a
batch: no cross-talk. A job with a `seed` runs alone, so that the seed alone decides its sample.

Tokens reach each job as they are made, through a streamer that splits generate()'s (b,) step
tokens by row and turns them into text deltas; a row's text stops at EOS or at one of its stop
strings (which is never sent), and a stop string that may still be forming is held back until it
either completes or cannot. A failing batch fails its jobs (each gets an error event) and the
worker carries on with the next one.

Why not continuous batching: a job that arrives while a batch decodes waits for that batch (at
most max_tokens steps). transformers' continuous batching needs paged attention caches, which a
masked mixer does not have.
"""

from __future__ import annotations

import collections
import copy
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.generation.streamers import BaseStreamer

from ..core.errors import UserError
from ..generation import check_length, cut_at_stop, encode_prompts, generate_ids


@dataclass(frozen=True)
class Sampling:
    """How a job decodes; jobs with equal Sampling can share a batch. temperature 0 = greedy."""

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    stop: tuple[str, ...] = ()

    def generate_kwargs(self) -> dict:
        greedy = self.temperature == 0
        return dict(
            greedy=greedy,
            temperature=1.0 if greedy else self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            repetition_penalty=self.repetition_penalty,
            stop_strings=list(self.stop) or None,
        )


@dataclass
class Event:
    """What a job reports: kind "text" (a delta), "done" (finish_reason, token counts) or "error" (message)."""

    kind: str
    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Job:
    """One prompt to complete; `emit` receives its Events, from the worker thread."""

    prompt: str
    sampling: Sampling
    emit: Callable[[Event], None]
    seed: int | None = None
    prompt_tokens: int = 0
    tokens: list[int] = field(default_factory=list)
    sent: int = 0  # characters of the (cut) text already emitted
    finished: bool = False

    def batch_key(self) -> Sampling | None:
        return None if self.seed is not None else self.sampling


class _RowStreamer(BaseStreamer):
    """Splits generate()'s step tokens (b,) by row into each job's text deltas and final event."""

    def __init__(self, jobs: list[Job], tokenizer: PreTrainedTokenizerBase):
        self.jobs, self.tokenizer = jobs, tokenizer
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate() first hands over the prompts
            self.prompt_seen = True
            return
        for job, token in zip(self.jobs, value.reshape(len(self.jobs), -1)[:, -1].tolist()):
            if job.finished:
                continue
            if token == self.tokenizer.eos_token_id:
                self._finish(job, "stop")
                continue
            job.tokens.append(token)
            self._advance(job, final=len(job.tokens) >= job.sampling.max_tokens)

    def end(self) -> None:
        for job in self.jobs:
            if not job.finished:
                self._advance(job, final=True)

    def _advance(self, job: Job, final: bool) -> None:
        text = self.tokenizer.decode(job.tokens, skip_special_tokens=True)
        text, stopped = cut_at_stop(text, job.sampling.stop)
        if stopped or final:
            self._send(job, text)
            self._finish(job, "stop" if stopped else "length")
            return
        hold = max((len(s) - 1 for s in job.sampling.stop), default=0)  # a stop string may be forming at the end
        safe = text[: len(text) - hold] if hold else text
        if safe.endswith("\ufffd"):  # an incomplete UTF-8 character: wait for its next byte
            safe = safe.rstrip("\ufffd")
        self._send(job, safe)

    @staticmethod
    def _send(job: Job, text: str) -> None:
        if len(text) > job.sent:
            job.emit(Event("text", text=text[job.sent :]))
            job.sent = len(text)

    @staticmethod
    def _finish(job: Job, reason: str) -> None:
        job.finished = True
        job.emit(
            Event("done", finish_reason=reason, prompt_tokens=job.prompt_tokens, completion_tokens=len(job.tokens))
        )


class Engine:
    """Owns the model; `submit` queues a Job, the worker thread decodes batches of them."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        max_batch_size: int = 8,
        batch_wait_s: float = 0.005,
    ):
        if max_batch_size < 1:
            raise UserError(f"--max-batch-size: must be >= 1, got {max_batch_size}")
        self.model, self.tokenizer = model, tokenizer
        # the worker encodes and decodes with `tokenizer` while requests are checked on the server's thread:
        # a Rust tokenizer must not be used from two threads at once ("Already borrowed"), so checks get a copy
        self._check_tokenizer = copy.deepcopy(tokenizer)
        self.max_batch_size, self.batch_wait_s = max_batch_size, batch_wait_s
        self.batches_run = 0  # how many generate() calls, and how many jobs they carried (tests read these)
        self.jobs_run = 0
        self._inbox: queue.Queue[Job | None] = queue.Queue()
        self._waiting: collections.deque[Job] = collections.deque()
        self._thread = threading.Thread(target=self._work, name="masked-mixers-engine", daemon=True)

    def start(self) -> Engine:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._inbox.put(None)
        self._thread.join(timeout=30)

    def submit(self, jobs: list[Job]) -> None:
        """Queue `jobs`, all or none: a UserError (prompt too long for the model, ...) queues nothing.

        Call from one thread (the server's event loop): the checks share one tokenizer copy.
        """
        for job in jobs:
            inputs = encode_prompts(self.model, self._check_tokenizer, [job.prompt], job.sampling.max_tokens)
            check_length(self.model, inputs["input_ids"].shape[1], job.sampling.max_tokens)
            job.prompt_tokens = int(inputs["attention_mask"].sum())
        for job in jobs:
            self._inbox.put(job)

    # --- the worker -------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._run(batch)

    def _next_batch(self) -> list[Job] | None:
        """The oldest waiting job and the compatible jobs waiting with it (after a short wait for more)."""
        if not self._waiting:
            job = self._inbox.get()
            if job is None:
                return None
            self._waiting.append(job)
        deadline = time.monotonic() + self.batch_wait_s
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                job = self._inbox.get(timeout=remaining)
            except queue.Empty:
                break
            if job is None:
                self._inbox.put(None)  # stop after this batch
                break
            self._waiting.append(job)
        head = self._waiting.popleft()
        batch = [head]
        if head.batch_key() is not None:
            for job in list(self._waiting):
                if len(batch) == self.max_batch_size:
                    break
                if job.batch_key() == head.batch_key():
                    batch.append(job)
                    self._waiting.remove(job)
        return batch

    def _run(self, batch: list[Job]) -> None:
        sampling = batch[0].sampling
        try:
            generate_ids(
                self.model,
                self.tokenizer,
                [job.prompt for job in batch],
                sampling.max_tokens,
                seed=batch[0].seed,
                streamer=_RowStreamer(batch, self.tokenizer),
                **sampling.generate_kwargs(),
            )
        except Exception as err:  # noqa: BLE001 - one failing batch must not stop the server
            message = str(err) if isinstance(err, UserError) else f"generation failed: {type(err).__name__}: {err}"
            for job in batch:
                if not job.finished:
                    job.finished = True
                    job.emit(Event("error", text=message))
        self.batches_run += 1
        self.jobs_run += len(batch)


__all__ = ["Engine", "Event", "Job", "Sampling"]
