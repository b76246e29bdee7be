"""Wall-clock, CPU and GPU time of a training run, continued across resumes.

Wall-clock time measures the machine's load as much as the work; CPU and GPU time beside it say
how much of the wall time the run itself got (on a shared machine CPU time stays near what an idle
machine needs while wall time grows).

- wall: time.perf_counter since the Trainer began training (evaluation and saving included).
- cpu: time.process_time over the same span: CPU seconds of this process, all its threads (torch's
  intra-op pool included). Data-loading worker processes (train.num_workers > 0; 0 by default on
  CPU) are not counted: resource.getrusage(RUSAGE_CHILDREN) would count them only once they exit.
- gpu: on CUDA, the time between two CUDA events on the current stream at each optimizer step's
  start and end (forward and backward of every micro-batch, clipping, optimizer step; the batch is
  fetched before the start event; evaluation and saving are outside). None without CUDA. Events are
  read when a value is asked for (at logging), so timing adds no host-device sync per step.
"""

from __future__ import annotations

import time

import torch


class TrainingClocks:
    """The three clocks of one run; `start` takes the seconds spent before a resume."""

    def __init__(self):
        self.cuda = torch.cuda.is_available()
        self._before = (0.0, 0.0, 0.0)
        self._wall0 = self._cpu0 = None
        self._gpu = 0.0  # seconds of resolved event pairs
        self._pending: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._open: torch.cuda.Event | None = None

    def start(self, wall: float = 0.0, cpu: float = 0.0, gpu: float = 0.0) -> None:
        self._before = (wall, cpu, gpu)
        self._wall0, self._cpu0 = time.perf_counter(), time.process_time()
        self._gpu, self._pending, self._open = 0.0, [], None

    def step_begin(self) -> None:
        if self.cuda:
            self._open = torch.cuda.Event(enable_timing=True)
            self._open.record()

    def step_end(self) -> None:
        if self.cuda and self._open is not None:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self._pending.append((self._open, end))
            self._open = None

    def wall(self) -> float:
        return self._before[0] + (time.perf_counter() - self._wall0 if self._wall0 is not None else 0.0)

    def cpu(self) -> float:
        return self._before[1] + (time.process_time() - self._cpu0 if self._cpu0 is not None else 0.0)

    def gpu(self) -> float | None:
        if not self.cuda:
            return None
        for begin, end in self._pending:
            end.synchronize()
            self._gpu += begin.elapsed_time(end) / 1000  # ms -> s
        self._pending.clear()
        return self._before[2] + self._gpu


__all__ = ["TrainingClocks"]
