"""Wall-clock, CPU and GPU time of a training run, continued across resumes.

Wall-clock time measures the machine's load as much as the work; CPU and GPU time beside it say
how much of the wall time the run itself got (on a shared machine CPU time stays near what an idle
machine needs while wall time grows).

- wall: time.perf_counter since the Trainer began training (evaluation and saving included).
- cpu: time.process_time over the same span: CPU seconds of this process, all its threads (torch's
  intra-op pool included). Data-loading worker processes (train.num_workers > 0; 0 by default on
  CPU) are not counted: resource.getrusage(RUSAGE_CHILDREN) would count them only once they exit.
- step_cpu: the part of `cpu` inside the optimizer steps (each step's start to its end, as gpu),
  so evaluation and saving do not count: the clock a CPU compute-time budget reads.
- gpu: on CUDA, the time between two CUDA events on the current stream at each optimizer step's
  start and end (forward and backward of every micro-batch, clipping, optimizer step; the batch is
  fetched before the start event; evaluation and saving are outside). None without CUDA. Events are
  read when a value is asked for (at logging), so timing adds no host-device sync per step.
"""

from __future__ import annotations

import time

import torch

_process_time = time.process_time  # the CPU clock (tests replace it)


class TrainingClocks:
    """The three clocks of one run; `start` takes the seconds spent before a resume."""

    def __init__(self):
        self.cuda = torch.cuda.is_available()
        self._before = (0.0, 0.0, 0.0, 0.0)
        self._wall0 = self._cpu0 = None
        self._step_cpu, self._step_cpu0 = 0.0, None
        self._gpu = 0.0  # seconds of resolved event pairs
        self._pending: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._open: torch.cuda.Event | None = None

    def start(self, wall: float = 0.0, cpu: float = 0.0, gpu: float = 0.0, step_cpu: float = 0.0) -> None:
        self._before = (wall, cpu, gpu, step_cpu)
        self._wall0, self._cpu0 = time.perf_counter(), _process_time()
        self._step_cpu, self._step_cpu0 = 0.0, None
        self._gpu, self._pending, self._open = 0.0, [], None

    def step_begin(self) -> None:
        self._step_cpu0 = _process_time()
        if self.cuda:
            self._open = torch.cuda.Event(enable_timing=True)
            self._open.record()

    def step_end(self) -> None:
        if self._step_cpu0 is not None:
            self._step_cpu += _process_time() - self._step_cpu0
            self._step_cpu0 = None
        if self.cuda and self._open is not None:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self._pending.append((self._open, end))
            self._open = None

    def wall(self) -> float:
        return self._before[0] + (time.perf_counter() - self._wall0 if self._wall0 is not None else 0.0)

    def cpu(self) -> float:
        return self._before[1] + (_process_time() - self._cpu0 if self._cpu0 is not None else 0.0)

    def step_cpu(self) -> float:
        return self._before[3] + self._step_cpu

    def compute(self) -> float:
        """The compute-time budget's clock: GPU seconds of the steps on CUDA, else their CPU seconds."""
        gpu = self.gpu()
        return self.step_cpu() if gpu is None else gpu

    def gpu(self) -> float | None:
        if not self.cuda:
            return None
        for begin, end in self._pending:
            end.synchronize()
            self._gpu += begin.elapsed_time(end) / 1000  # ms -> s
        self._pending.clear()
        return self._before[2] + self._gpu


__all__ = ["TrainingClocks"]
