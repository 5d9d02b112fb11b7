"""``warden serve`` forked from an interpreter that has already imported Warden and torch.

A server started as a fresh interpreter spends about five seconds of CPU importing torch,
SQLAlchemy, FastAPI and Warden before it serves; the suite starts a few hundred. Python's
forkserver imports them once per test worker and forks each server from that process, which
runs no Warden code itself, so every server still starts from a clean state: its settings come
from its own environment, its umask is its caller's, and it builds its runtime, journal writer
and caches as in production.

Any ``warden`` command started through the launcher is forked so (``warden serve``, or a
``warden init`` a test runs as a process of its own); other commands (the bare baseline, the
witness) still get a fresh interpreter.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path

from governance.cli.server_process import Child, popen_launcher

# What ``warden serve`` imports before it answers, and the libraries its jobs load later. Not
# Opacus, WeasyPrint or Matplotlib: about 4 s of CPU in every worker's forkserver, for the few
# servers that train or render a report, which save about as much.
PRELOAD = [
    "governance.cli.main",
    "governance.api.app",
    "tests.preload_routes",
    "governance.audit.journal.remote",
    "uvicorn",
    "uvicorn.protocols.http.httptools_impl",
    "uvloop",
    "torch",
    "inference",
    "numpy",
    "pandas",
    "pyarrow",
]
_SERVE = ("-m", "governance.cli.main")


def _run_warden(argv: list[str], env: dict[str, str], cwd: str, log: str, umask: int) -> None:
    """The child: ``warden ARGV`` with the caller's environment and umask, output to ``log``."""
    os.umask(umask)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    sys.argv = ["warden", *argv]
    from governance.cli.main import app

    app(argv, prog_name="warden")


def _umask() -> int:
    """This process's umask, which a child started with Popen would inherit (read, not set:
    setting it to read it would race with other threads creating files)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    raise RuntimeError("/proc/self/status has no Umask line")


class ForkedChild:
    """A forked server, handled like a ``subprocess.Popen``."""

    def __init__(self, process: BaseProcess) -> None:
        self._process = process

    @property
    def pid(self) -> int:
        pid = self._process.pid
        assert pid is not None
        return pid

    def poll(self) -> int | None:
        return self._process.exitcode

    def kill(self) -> None:
        self._process.kill()

    def terminate(self) -> None:
        self._process.terminate()

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        code = self._process.exitcode
        if code is None:
            raise subprocess.TimeoutExpired("warden serve", timeout or 0.0)
        return code


class ForkLauncher:
    """Forks ``warden`` commands run with this interpreter; starts anything else fresh."""

    def __init__(self) -> None:
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(PRELOAD)
        self._started: list[BaseProcess] = []

    def __call__(
        self, command: Sequence[str], *, cwd: Path, env: Mapping[str, str], log: Path
    ) -> Child:
        command = list(command)
        if command[0] != sys.executable or tuple(command[1:3]) != _SERVE:
            return popen_launcher(command, cwd=cwd, env=env, log=log)
        process = self._context.Process(
            target=_run_warden,
            args=(command[3:], dict(env), str(cwd), str(log), _umask()),
            name="warden-serve",
        )
        process.start()
        self._started.append(process)
        return ForkedChild(process)

    def stop_all(self) -> None:
        """Kill what a failed test left running, so the worker does not wait on it at exit."""
        for process in self._started:
            if process.exitcode is None:
                process.kill()
                process.join(10)
        self._started.clear()
