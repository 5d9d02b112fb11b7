"""A ``warden serve`` (or any ASGI server) subprocess on a free local port.

The demo, the end-to-end tests and the benchmarks all start real servers; this is the one
place that knows how to start one, wait until it answers, and stop it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import httpx

from governance.config import REPO_ROOT
from governance.kit.http import client as http_client
from governance.private_files import open_private


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_command(port: int) -> list[str]:
    """``warden serve`` on ``port``, with this interpreter."""
    return [sys.executable, "-m", "governance.cli.main", "serve", "--port", str(port)]


class Child(Protocol):
    """The part of ``subprocess.Popen`` that a started server is handled through."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def kill(self) -> None: ...

    def terminate(self) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...


class Launcher(Protocol):
    """Starts ``command`` in ``cwd`` with ``env``, its stdout and stderr going to ``log``."""

    def __call__(
        self, command: Sequence[str], *, cwd: Path, env: Mapping[str, str], log: Path
    ) -> Child: ...


def popen_launcher(
    command: Sequence[str], *, cwd: Path, env: Mapping[str, str], log: Path
) -> Child:
    """A fresh interpreter per server: what the demo, the benchmarks and operators get."""
    # The log names routes, principals and errors: its owner's alone (0600).
    with open_private(log, append=True) as out:
        # A fixed argument list, no shell, no untrusted input.
        return subprocess.Popen(  # noqa: S603
            list(command), cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT
        )


class ServerProcess:
    """A server subprocess whose output goes to a log file.

    Args:
        env: the environment (``WARDEN_*`` settings) of the server.
        log_path: where its stdout and stderr go.
        command: the command to run, given the port (default: ``warden serve``).
        ready_path: the path polled until it answers 200.
        launcher: how the process is started; the test suite sets ``default_launcher`` to one
            that forks servers from a pre-imported interpreter.
    """

    default_launcher: Launcher = popen_launcher

    def __init__(
        self,
        env: Mapping[str, str],
        log_path: Path,
        *,
        command: Sequence[str] | None = None,
        port: int | None = None,
        ready_path: str = "/healthz",
        launcher: Launcher | None = None,
    ) -> None:
        self.launcher = launcher or ServerProcess.default_launcher
        self.env = dict(env)
        self.log_path = log_path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = list(command) if command is not None else serve_command(self.port)
        self.ready_path = ready_path
        self.proc: Child | None = None

    def start(self, timeout: float = 90.0) -> ServerProcess:
        """Start it and wait until ``ready_path`` answers 200.

        Raises:
            RuntimeError: it exited or did not become ready in time (the log's tail says why).
        """
        self.proc = self.launcher(self.command, cwd=REPO_ROOT, env=self.env, log=self.log_path)
        deadline = time.monotonic() + timeout
        with http_client(timeout=1) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited at start:\n{self.log_tail()}")
                try:
                    if client.get(self.url + self.ready_path).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        self.stop(kill=True)
        raise RuntimeError(f"the server did not become ready in {timeout:.0f} s")

    @property
    def pid(self) -> int:
        """The server's process id (it must be running)."""
        if self.proc is None:
            raise RuntimeError("the server is not running")
        return self.proc.pid

    def stop(self, *, kill: bool = False) -> None:
        """Stop it: SIGTERM (a clean shutdown: final checkpoint) or, with ``kill``, SIGKILL."""
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""
