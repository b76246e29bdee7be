"""Peak memory of a block of work, on whatever device it runs.

On CUDA this is the allocator's peak (`torch.cuda.max_memory_allocated`), exact and resettable.
On CPU PyTorch keeps no such counter and the OS's `ru_maxrss` cannot be reset, so a background
thread samples the process's resident set size and reports the peak above the level at entry:
coarse (a few ms between samples), but measured rather than guessed. `TensorPeakMemory` counts
live tensor storages instead: exact on any device, for short measurements such as size matching.
"""

from __future__ import annotations

import threading
import weakref

import psutil
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


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

    def __enter__(self) -> PeakMemory:
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


class TensorPeakMemory(TorchDispatchMode):
    """Context manager: peak bytes of tensor storages created inside the block and still alive.

    The CPU counterpart of CUDA's `max_memory_allocated`, for comparing models on a CPU: every
    tensor an operator returns is counted until its storage is freed (a weakref finalizer), so
    the number is exact and repeatable, unlike a sampled resident set size that the C allocator
    blurs by reusing freed pages. Build the model inside the block to count its parameters too.
    Slower than plain execution (a Python hook per operator): use it around a few steps only.
    """

    def __init__(self):
        super().__init__()
        self.bytes = 0
        self._current = 0
        self._live: set[int] = set()

    def _release(self, key: int, nbytes: int) -> None:
        self._live.discard(key)
        self._current -= nbytes

    def _track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key, nbytes = storage.data_ptr(), storage.nbytes()
        if nbytes == 0 or key in self._live:  # views share their base's storage
            return
        self._live.add(key)
        self._current += nbytes
        self.bytes = max(self.bytes, self._current)
        weakref.finalize(storage, self._release, key, nbytes)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor) and not value.is_meta:
                self._track(value)
        return out
