"""Starting and stopping ``uniscale serve`` as a real subprocess on loopback, for the tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A running ``uniscale serve``: its process, port and log."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path):
        self.proc, self.port, self.log = proc, port, log
        self.url = f"http://127.0.0.1:{port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def start_server(tmp: Path, *args: str, ready_path: str = "/health", timeout: float = 240.0) -> Server:
    """``uniscale serve ARGS`` on a free port, once ``ready_path`` answers (its output goes to a log in ``tmp``)."""
    port = free_port()
    log = tmp / f"server-{port}.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uniscale_integrations.cli", "serve", "--port", str(port), *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = Server(proc, port, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"uniscale serve exited with {proc.returncode}:\n{server.output()}")
        try:
            if httpx.get(server.url + ready_path, timeout=2.0).status_code in (200, 401):
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_server(server)
    raise AssertionError(f"uniscale serve was not ready within {timeout:.0f} s:\n{server.output()}")


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(timeout=30)
