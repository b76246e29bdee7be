"""Peak memory of a block of work, on whatever device it runs.

On CUDA this is the allocator's peak (`torch.cuda.max_memory_allocated`), exact and resettable.
On CPU PyTorch keeps no such counter and the OS's `ru_maxrss` cannot be reset, so a background
thread samples the process's resident set size and reports the peak above the level at entry:
coarse (a few ms between samples), but measured rather than guessed.
"""

from __future__ import annotations

import threading

import psutil
import torch


class PeakMemory:
    """Context manager: `with PeakMemory() as peak: ...; peak.bytes` is the peak extra memory."""

    def __init__(self, interval_s: float = 0.005, device: str | None = None):
        self.interval_s = interval_s
        self.cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
        self.bytes: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._base = self._peak = 0

    def _sample(self) -> None:
        process = psutil.Process()
        while not self._stop.wait(self.interval_s):
            self._peak = max(self._peak, process.memory_info().rss)

    def __enter__(self) -> "PeakMemory":
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
        else:
            self._base = self._peak = psutil.Process().memory_info().rss
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self.bytes = torch.cuda.max_memory_allocated() - self._base
        else:
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, psutil.Process().memory_info().rss)
            self.bytes = self._peak - self._base
