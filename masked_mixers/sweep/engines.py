"""Where sweep points run: an established executor, never a scheduler of our own.

- `LocalEngine`: `concurrent.futures.ProcessPoolExecutor` with spawned workers (a fork of a process
  that has started torch's threads can deadlock). Workers are reused from point to point, so the
  imports (torch, transformers) are paid once per worker. With several workers, each gets an equal
  share of the cores (torch would otherwise start as many threads as cores in every worker).
- `SubmititEngine`: one submitit job per point. `cluster: slurm` submits to SLURM (sbatch; the
  jobs run the same function in the same environment), `cluster: local` runs each job as a
  subprocess of this machine, which is how it is tested. Why submitit rather than Ray: docs/sweeps.md.

Both hand out handles with `.done()`, `.result()` and `.cancel()` (a Future, a submitit Job);
`wait` blocks until at least one of the given handles is done.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import time
from pathlib import Path

from ..core.errors import UserError, reason
from .config import EngineConfig

SUBMITIT_DIR = ".submitit"  # submitit's own folder (pickled jobs, logs) in the sweep folder


def _init_worker(threads: int | None) -> None:
    """A local worker's start: its share of the cores."""
    if threads:
        import torch

        torch.set_num_threads(threads)


class LocalEngine:
    """A process pool on this machine; `workers` points at once."""

    def __init__(self, workers: int):
        self.workers = workers
        threads = max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None
        self.pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(threads,),
        )

    def submit(self, fn, *args):
        return self.pool.submit(fn, *args)

    def wait(self, handles: list) -> None:
        concurrent.futures.wait(handles, return_when=concurrent.futures.FIRST_COMPLETED)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class SubmititEngine:
    """One submitit job per point; `workers` (null: all) in flight at once."""

    def __init__(self, config: EngineConfig, sweep_dir: Path):
        try:
            import submitit
        except ImportError:
            raise UserError(
                "engine.name: submitit is not installed; pip install 'masked-mixers[cluster]' (or use engine local)"
            ) from None
        self.workers = config.workers or 10**9
        self.poll_seconds = config.poll_seconds
        try:
            self.executor = submitit.AutoExecutor(folder=sweep_dir / SUBMITIT_DIR, cluster=config.cluster)
            self.executor.update_parameters(**config.parameters)
        except (ValueError, NameError, AssertionError, RuntimeError) as err:  # submitit's ways of refusing a setting
            raise UserError(f"engine: submitit refuses the settings ({reason(err)})") from None
        self.jobs: list = []

    def submit(self, fn, *args):
        job = self.executor.submit(fn, *args)
        self.jobs.append(job)
        return job

    def wait(self, handles: list) -> None:
        while not any(job.done() for job in handles):
            time.sleep(self.poll_seconds)

    def close(self) -> None:
        for job in self.jobs:
            if not job.done():
                job.cancel(check=False)


def make_engine(config: EngineConfig, sweep_dir: Path) -> LocalEngine | SubmititEngine:
    if config.name == "submitit":
        return SubmititEngine(config, sweep_dir)
    return LocalEngine(config.workers or 1)


__all__ = ["LocalEngine", "SUBMITIT_DIR", "SubmititEngine", "make_engine"]
