"""A `masked-mixers serve` child process on 127.0.0.1: started, waited for until /health answers, stopped.

Used by `bench serve` (the load test) and by the server tests, so both run the server exactly as a
user does: a separate process speaking HTTP on a free port.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


class ServerFailed(RuntimeError):
    """The server exited or did not answer in time; the message ends with its log's tail."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(base: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{base}/health", timeout=10).status_code == 200
    except httpx.TransportError:
        return False


@contextlib.contextmanager
def server_process(
    run_dir: Path, *flags: str, log_path: Path, start_s: float = 300, cwd=None, env=None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """(base url, process) of `masked-mixers serve RUN_DIR --port P FLAGS` once /health answers; terminated
    after (killed if it ignores SIGTERM for 30 s). Its output goes to `log_path`."""
    port = free_port()
    command = [sys.executable, "-m", "masked_mixers", "serve", str(run_dir), "--port", str(port), *flags]
    with Path(log_path).open("w") as log:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_s
        while not _healthy(base):
            if process.poll() is not None:
                raise ServerFailed(f"server exited {process.returncode}:\n{Path(log_path).read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise ServerFailed(f"server did not come up in {start_s:g} s:\n{Path(log_path).read_text()[-3000:]}")
            time.sleep(0.5)
        yield base, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


__all__ = ["ServerFailed", "free_port", "server_process"]
