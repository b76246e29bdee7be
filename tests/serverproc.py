"""A real `masked-mixers serve` child process on 127.0.0.1 for the server tests, started and stopped with `serve`."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from clirun import ROOT, child_env

from masked_mixers.serving.launch import ServerFailed, server_process

START_S = 300  # seconds to import torch and load the model: minutes on a machine loaded by other work


@contextlib.contextmanager
def serve(run_dir: Path, *flags: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """(base url, process) of `masked-mixers serve RUN_DIR --device cpu FLAGS` once /health answers; stopped after."""
    flags = ("--device", "cpu", "--log-level", "warning", *flags)
    log_path = run_dir.parent / f"server-{time.monotonic_ns()}.log"
    try:
        with server_process(run_dir, *flags, log_path=log_path, start_s=START_S, cwd=ROOT, env=child_env()) as server:
            yield server
    except ServerFailed as err:
        pytest.fail(str(err))


def wait_for(condition, timeout_s: float, what: str) -> float:
    """Seconds until `condition()` held (polled every 0.05 s); fails naming `what` after `timeout_s`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_s:
            pytest.fail(f"{what}: not within {timeout_s} s")
        time.sleep(0.05)
    return time.monotonic() - start
