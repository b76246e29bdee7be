"""A real `masked-mixers serve` child process on 127.0.0.1 for the server tests, started and stopped with `serve`."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from clirun import ROOT, child_env

START_S = 300  # seconds to import torch and load the model: minutes on a machine loaded by other work


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=10).status_code == 200
    except httpx.TransportError:
        return False


@contextlib.contextmanager
def serve(run_dir: Path, *flags: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """(base url, process) of `masked-mixers serve RUN_DIR --device cpu FLAGS` once /health answers; stopped after."""
    port = _free_port()
    log_path = run_dir.parent / f"server-{port}.log"
    command = [sys.executable, "-m", "masked_mixers", "serve", str(run_dir), "--port", str(port), "--device", "cpu"]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*command, "--log-level", "warning", *flags],
            cwd=ROOT,
            env=child_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_S
        while not _healthy(base):
            if process.poll() is not None:
                pytest.fail(f"server exited {process.returncode}:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"server did not come up in {START_S} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield base, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def wait_for(condition, timeout_s: float, what: str) -> float:
    """Seconds until `condition()` held (polled every 0.05 s); fails naming `what` after `timeout_s`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_s:
            pytest.fail(f"{what}: not within {timeout_s} s")
        time.sleep(0.05)
    return time.monotonic() - start
