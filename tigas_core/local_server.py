"""One of TIGAS's servers (the Gradio app, the Streamlit dashboard) as a child process, for the
tests and benchmarks that talk to the real thing over HTTP.

The child gets its own process group, so stopping it also stops the workers it forks (a Gradio
queue, Streamlit's script runners) instead of leaving them holding the port; it counts as started
once ``ready_url`` answers 200, and a child that dies or never answers is reported with its log.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from types import TracebackType


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalServer:
    """``with LocalServer(command, ready_url, log_path): ...`` runs ``command`` for the block."""

    def __init__(self, command: list[str], ready_url: str, log_path: Path, env: dict[str, str] | None = None,
                 timeout_s: float = 300.0):
        self.command, self.ready_url, self.log_path = command, ready_url, Path(log_path)
        self.env, self.timeout_s = env, timeout_s
        self.process: subprocess.Popen | None = None

    def start(self) -> LocalServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                            start_new_session=True)
        deadline = time.monotonic() + self.timeout_s
        while not self.answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command[0]} exited with {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.ready_url} did not answer within {self.timeout_s:.0f} s:\n{self.log_tail()}")
            time.sleep(0.5)
        return self

    def answers(self) -> bool:
        """Whether the ready URL answers 200 right now."""
        try:
            with urllib.request.urlopen(self.ready_url, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM to the whole process group; SIGKILL if it is still there after 20 s."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)  # also when the leader is gone: its workers may not be
            self.process.wait(timeout=20)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.stop()
