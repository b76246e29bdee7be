"""Timing helpers for benchmarks: a synchronised clock and the measured matmul peak of a device."""

from __future__ import annotations

import statistics
import time

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    """Seconds `fn()` takes, with the device's queue drained before and after."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def matmul_peak(device: str, dtype: str, sizes: tuple[int, ...] | None = None, repeats: int = 5) -> dict:
    """The highest FLOP/s of square (n, n) @ (n, n) matmuls on `device` in `dtype`: the fastest of
    `repeats` products at each size, the best size.

    sizes: default 512, 1024 and 2048 on a CPU; 4096 and 8192 on a GPU, where smaller products end
    before the tensor cores reach their rate and would understate the peak (overstating MFU).
    The fastest repeat, not the median: a peak is what the device reaches, and on a shared machine
    the slower repeats measure the other jobs.

    This is the probe behind MFU's denominator (`mfu_peak`): what this device's GEMM library actually
    reaches now, rather than a datasheet number.
    """
    best = {"flops_per_second": 0.0, "n": None}
    for n in sizes or ((4096, 8192) if device.startswith("cuda") else (512, 1024, 2048)):
        a = torch.randn(n, n, device=device, dtype=DTYPES[dtype])
        b = torch.randn(n, n, device=device, dtype=DTYPES[dtype])
        torch.matmul(a, b)  # warm up
        fastest = min(timed(lambda a=a, b=b: torch.matmul(a, b), device) for _ in range(repeats))
        rate = 2 * n**3 / fastest
        if rate > best["flops_per_second"]:
            best = {"flops_per_second": rate, "n": n}
    return best


def mfu_peak(probes: list[dict], achieved: list[float]) -> dict:
    """MFU's denominator: the best of the run's matmul probes (`matmul_peak`, taken before and after the
    timed steps) or, if higher, the highest analytic model FLOP/s a contender reached.

    The analytic count can exceed the work done (training = 3 x forward also counts input gradients
    nobody computes, e.g. of the embedding output; a triangular mixing skips half the block it is
    counted over), and a probe on a shared machine can be slowed by other jobs. A model at or above
    the probe shows the device does at least that, so it becomes the peak: MFU is at most 100% by
    construction, and `source` says which set it.
    """
    best = max(probes, key=lambda p: p["flops_per_second"])
    peak = {**best, "source": "matmul probe", "probes": [p["flops_per_second"] for p in probes]}
    if achieved and max(achieved) > best["flops_per_second"]:
        peak.update(flops_per_second=max(achieved), source="model FLOP/s above the probe")
    return peak


def memory_bandwidth(device: str, megabytes: int = 256, repeats: int = 5) -> float:
    """Bytes per second of a large device-to-device copy, counting bytes read and written.

    The denominator of a decoding step's weights-read floor: a step reads every weight once, and
    a plain copy is about the best any kernel streams memory on this device.
    """
    n = megabytes * 2**20 // 4
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)  # warm up
    median = statistics.median(timed(lambda: dst.copy_(src), device) for _ in range(repeats))
    return 2 * 4 * n / median
