"""The generation engine behind `masked-mixers serve`: one model, one worker thread, batched requests.

Requests (`Job`s, one per choice) arrive from any number of HTTP handlers; `submit` encodes and
checks them (prompt length, the queue's room) and queues them, all or none. The queue is bounded
(`max_queue` waiting choices; `submit` raises `Busy` beyond it) and `stop` ends the running rows at
their next step and fails what still waits. A failing step or batch fails its jobs (each gets an
error event) and the worker carries on.

Two ways to batch (`batching`):

- continuous (the default for families with `Capabilities.continuous_batching`, the mixers): a
  waiting job joins the running batch before the next decoding step, up to `max_batch_size` rows,
  and leaves it when it ends (continuous.py). Each row samples with its own settings and, when
  seeded, its own generator, so any jobs can share the batch. With `compile` (`serve --compile`) each
  step runs through a torch.compile'd fixed-shape graph, one per batch-size bucket, all compiled in
  `start` before the first request (rows.py CompiledRows); else through the model's own cached forward.
- static (every other family, or `--batching static`): the worker takes the oldest waiting job and
  batches it with the other waiting jobs that decode the same way (same `Sampling`, no seed), up to
  `max_batch_size`, then runs them through `generation.generate_ids` as one batch to its end; a job
  that arrives meanwhile waits for it. The choices of one seeded request run together, seeded once,
  and apart from everything else, so that the seed alone decides their samples.

Either way the prompt layout makes every row's tokens independent of the others (a mixer's prompts
keep their positions; Llama's pads are masked), so a request gets the same greedy text alone or in
a batch: no cross-talk. After every step `stream.JobText` hands each row's token to its job (text
deltas, stop strings, EOS, `max_tokens`) and ends the rows that are done, cancelled (`cancel`: the
client went away) or past their deadline; a row stops within one step of either.
"""

from __future__ import annotations

import collections
import copy
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..core.errors import UserError
from ..generation import check_length, encode_prompts, generate_ids
from ..models import context_length, family_of
from .continuous import ContinuousBatch
from .rows import CompiledRows
from .scoring import Scored, StepLogprobs, openai_logprobs, prompt_logprobs, score
from .stream import RowTracker


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
        )


@dataclass
class Event:
    """What a job reports: kind "text" (a delta), "done" (finish_reason, token counts, logprobs) or "error"
    (message, HTTP status)."""

    kind: str
    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprobs: dict | None = None  # OpenAI's logprobs object
    status: int = 500


@dataclass(eq=False)
class Job:
    """One choice to complete; `emit` receives its Events, from the worker thread."""

    prompt: str | list[int]
    sampling: Sampling
    emit: Callable[[Event], None]
    seed: int | None = None
    group: int = 0  # the request it belongs to: a seeded request's choices share a batch
    choice: int = 0  # its place among them (a later batch of the same request is seeded seed + choice)
    echo: bool = False
    logprobs: int | None = None  # top-k log-probabilities per token (None: none)
    timeout_s: float = math.inf
    # set by the engine
    prompt_ids: list[int] = field(default_factory=list)
    deadline: float = math.inf
    cancelled: bool = False
    finished: bool = False
    completion_tokens: int = 0
    scored: list[Scored] = field(default_factory=list)

    def batch_key(self) -> tuple:
        return (self.sampling, None if self.seed is None else self.group)

    def text(self, delta: str) -> None:
        self.emit(Event("text", text=delta))

    def record_logprobs(self, token: int, logprobs) -> None:
        self.scored.append(score(token, logprobs, self.logprobs))

    def done(self, finish_reason: str, logprobs: dict | None = None) -> None:
        self.finished = True
        self.emit(Event("done", "", finish_reason, len(self.prompt_ids), self.completion_tokens, logprobs))

    def fail(self, message: str, status: int) -> None:
        self.finished = True
        self.emit(Event("error", text=message, status=status))


class Busy(Exception):
    """The queue has no room for a request's choices (the API answers 503 with Retry-After)."""


class Engine:
    """Owns the model; `submit` queues Jobs, the worker thread decodes batches of them."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        max_batch_size: int = 8,
        batch_wait_s: float = 0.005,
        max_queue: int = 256,
        max_prompt_tokens: int = 4096,
        batching: str = "auto",
        compile: bool = False,
    ):
        if max_batch_size < 1:
            raise UserError(f"--max-batch-size: must be >= 1, got {max_batch_size}")
        self.batching = resolve_batching(model, batching)
        self.compiled = _compiled_rows(model, self.batching, max_batch_size) if compile else None
        self.model, self.tokenizer = model, tokenizer
        # the worker encodes and decodes with `tokenizer` while requests are checked on other threads: a Rust
        # tokenizer must not be used from two threads at once ("Already borrowed"), so checks share a locked copy
        self._check_tokenizer = copy.deepcopy(tokenizer)
        self._check_lock = threading.Lock()
        self.max_batch_size, self.batch_wait_s = max_batch_size, batch_wait_s
        self.max_queue, self.max_prompt_tokens = max_queue, max_prompt_tokens
        # static: generate() calls and the jobs they carried; continuous: busy periods (a job that joins a running
        # batch starts none) and the jobs admitted (/health reports both, tests read them)
        self.batches_run = 0
        self.jobs_run = 0
        self.queued = 0  # jobs submitted and not yet taken into a batch
        self.running = 0  # jobs of the batch being decoded
        self._queue_lock = threading.Lock()
        self._stopping = False
        self._inbox: queue.Queue[Job | None] = queue.Queue()
        self._waiting: collections.deque[Job] = collections.deque()
        self._thread = threading.Thread(target=self._work, name="masked-mixers-engine", daemon=True)

    def start(self) -> Engine:
        """Compile the decoding step first when asked (`compile`: no request pays for it), then start the worker."""
        if self.compiled is not None:
            print(f"[serve] compiling the decoding step for batches of {self.compiled.buckets} rows", flush=True)
            print(f"[serve] compiled in {self.compiled.warm_up():.1f} s", flush=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30) -> None:
        """End the running batch at its next step, fail every waiting job, and wait for the worker."""
        self._stopping = True
        self._inbox.put(None)
        self._thread.join(timeout=timeout_s)

    def submit(self, jobs: list[Job]) -> None:
        """Queue `jobs`, all or none: a UserError (prompt too long, ...) or Busy (no room) queues nothing.

        Safe from any thread; it tokenizes, so call it off the event loop (asyncio.to_thread).
        """
        with self._check_lock:
            for job in jobs:
                self._check(job)
        with self._queue_lock:
            if self._stopping:
                raise Busy("the server is shutting down")
            if self.queued + len(jobs) > self.max_queue:
                raise Busy(f"{self.queued} choices already wait, at most {self.max_queue} may (--max-queue)")
            self.queued += len(jobs)
        now = time.monotonic()
        for job in jobs:
            job.deadline = now + job.timeout_s
            self._inbox.put(job)

    def cancel(self, jobs: list[Job]) -> None:
        """Stop `jobs` (their client went away): a waiting one is dropped, a running one ends at the next step."""
        for job in jobs:
            job.cancelled = True

    def _check(self, job: Job) -> None:
        inputs = encode_prompts(self.model, self._check_tokenizer, [job.prompt], job.sampling.max_tokens)
        job.prompt_ids = inputs["input_ids"][0][inputs["attention_mask"][0].bool()].tolist()
        tokens, vocab = len(job.prompt_ids), self.model.get_input_embeddings().num_embeddings
        if tokens > self.max_prompt_tokens:
            raise UserError(f"prompt: {tokens} tokens, above this server's limit of {self.max_prompt_tokens}")
        if any(not 0 <= t < vocab for t in job.prompt_ids):
            raise UserError(f"prompt: token ids must be from 0 to {vocab - 1}")
        if job.echo and job.logprobs is not None and tokens > context_length(self.model):
            raise UserError(f"prompt: {tokens} tokens; echo with logprobs scores at most {context_length(self.model)}")
        if job.sampling.max_tokens:
            check_length(self.model, inputs["input_ids"].shape[1], job.sampling.max_tokens)

    # --- the worker -------------------------------------------------------------------------

    def _work(self) -> None:
        if self.batching == "continuous":
            self._work_continuous()
        else:
            while (batch := self._next_batch()) is not None:
                self._run(batch)
        for job in self._drain():
            job.fail("the server is shutting down", 503)

    def _work_continuous(self) -> None:
        batch = ContinuousBatch(self.model, self.tokenizer, self._logprobs, lambda: self._stopping, self.compiled)
        while self._arrivals(block=not batch.rows and not self._waiting):
            if not batch.rows and self._waiting:
                self.batches_run += 1
            while self._waiting and len(batch) < self.max_batch_size:
                job = self._waiting.popleft()
                if self._take(job):
                    self._guarded([job], lambda job=job: self._admit(batch, job))
            self.running = len(batch)
            if batch.rows:
                self._guarded(batch.rows, batch.step, batch)
            self.running = len(batch)
        if batch.rows:  # stopping: the running rows end at this step
            self._guarded(batch.rows, batch.step, batch)
        self.running = 0

    def _arrivals(self, block: bool) -> bool:
        """Move what the inbox holds to the waiting list (waiting for one job when `block`); False: stop."""
        while True:
            try:
                job = self._inbox.get(block=block)
            except queue.Empty:
                return not self._stopping
            if job is None or self._stopping:
                return False
            self._waiting.append(job)
            block = False

    def _admit(self, batch: ContinuousBatch, job: Job) -> None:
        self.jobs_run += 1
        if self._begin(job):
            batch.admit(job)

    def _guarded(self, jobs: list, work: Callable, batch: ContinuousBatch | None = None) -> None:
        """Run `work`; if it raises, fail `jobs` (rows or jobs) and, for a step, empty the batch."""
        try:
            work()
        except Exception as err:  # noqa: BLE001 - one failing request must not stop the server
            message = _failure(err)
            if batch is not None:
                batch.fail(message, 500)
            for job in jobs:
                if isinstance(job, Job) and not job.finished:
                    job.fail(message, 500)

    def _drain(self) -> list[Job]:
        """Every job still waiting (the worker is stopping)."""
        jobs = list(self._waiting)
        while True:
            try:
                job = self._inbox.get_nowait()
            except queue.Empty:
                return jobs
            if job is not None:
                jobs.append(job)

    def _take(self, job: Job) -> bool:
        """Take a waiting job out of the queue; False when it is cancelled or past its deadline."""
        with self._queue_lock:
            self.queued -= 1
        if job.cancelled:
            return False
        if time.monotonic() > job.deadline:
            job.fail(f"the request waited past this server's limit of {job.timeout_s:g} s (--request-timeout)", 504)
            return False
        return True

    def _next_batch(self) -> list[Job] | None:
        """The oldest waiting job and the compatible jobs waiting with it (after a short wait for more)."""
        while not self._waiting:
            job = self._inbox.get()
            if job is None or self._stopping:
                return None
            self._waiting.append(job)
        deadline = time.monotonic() + self.batch_wait_s
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                job = self._inbox.get(timeout=remaining)
            except queue.Empty:
                break
            if job is None:
                return None
            self._waiting.append(job)
        head = self._waiting.popleft()
        batch = [head] if self._take(head) else []
        for job in list(self._waiting):
            if len(batch) == self.max_batch_size:
                break
            if job.batch_key() == head.batch_key():
                self._waiting.remove(job)
                if self._take(job):
                    batch.append(job)
        return batch

    def _run(self, batch: list[Job]) -> None:
        if not batch:
            return
        self.running = len(batch)
        try:
            self._decode(batch)
        except Exception as err:  # noqa: BLE001 - one failing batch must not stop the server
            message = _failure(err)
            for job in batch:
                if not job.finished:
                    job.fail(message, 500)
        self.batches_run += 1
        self.jobs_run += len(batch)
        self.running = 0

    def _begin(self, job: Job) -> bool:
        """Echo (and score) the prompt when asked; False when the job ends there (max_tokens 0: echo alone)."""
        if job.echo:
            job.text(job.prompt if isinstance(job.prompt, str) else self.tokenizer.decode(job.prompt_ids))
        if job.echo and job.logprobs is not None:
            job.scored = prompt_logprobs(self.model, job.prompt_ids, job.logprobs)
        if job.sampling.max_tokens == 0:
            job.done("length", self._logprobs(job))
            return False
        return True

    def _decode(self, batch: list[Job]) -> None:
        batch = [job for job in batch if self._begin(job)]
        if not batch:
            return
        sampling = batch[0].sampling
        with StepLogprobs(self.model, any(job.logprobs is not None for job in batch)) as logprobs:
            tracker = RowTracker(batch, self.tokenizer, logprobs, self._logprobs, lambda: self._stopping)
            generate_ids(
                self.model,
                self.tokenizer,
                [job.prompt_ids for job in batch],
                sampling.max_tokens,
                seed=None if batch[0].seed is None else batch[0].seed + batch[0].choice,
                stopping_criteria=[tracker],
                **sampling.generate_kwargs(),
            )
            tracker.end()

    def _logprobs(self, job: Job) -> dict | None:
        """OpenAI's logprobs object of a finished job (None unless it asked); its tokens start after the prompt
        unless echoed."""
        if job.logprobs is None:
            return None
        prompt = job.prompt if isinstance(job.prompt, str) else self.tokenizer.decode(job.prompt_ids)
        return openai_logprobs(self.tokenizer, job.scored, 0 if job.echo else len(prompt))


def _failure(err: Exception) -> str:
    return str(err) if isinstance(err, UserError) else f"generation failed: {type(err).__name__}: {err}"


def _compiled_rows(model: PreTrainedModel, batching: str, max_batch_size: int) -> CompiledRows:
    """The compiled step's rows (`--compile`): masked and linear mixers, continuous batching; else one line."""
    if not family_of(model).capabilities.compiled_decoding:
        raise UserError(
            f"--compile: only masked and linear mixers have a compiled decoding step, not the "
            f"{family_of(model).name} family"
        )
    if batching != "continuous":
        raise UserError("--compile: the compiled step serves continuous batching; drop --batching static")
    return CompiledRows(model, max_batch_size)


def resolve_batching(model: PreTrainedModel, batching: str) -> str:
    """ "continuous" or "static": `auto` picks continuous where the family's cache allows it (`--batching`)."""
    supported = family_of(model).capabilities.continuous_batching
    if batching == "auto":
        return "continuous" if supported else "static"
    if batching not in ("continuous", "static"):
        raise UserError(f"--batching: continuous, static or auto, got {batching!r}")
    if batching == "continuous" and not supported:
        raise UserError(
            f"--batching continuous: the {family_of(model).name} family's generation cache cannot hold rows at "
            "different positions; serve it with --batching static (or auto)"
        )
    return batching


__all__ = ["Busy", "Engine", "Event", "Job", "Sampling", "resolve_batching"]
