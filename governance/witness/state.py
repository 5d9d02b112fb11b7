"""The witness's memory: the latest checkpoint it cosigned for each log origin.

One JSON file, 0600, replaced atomically (written beside, fsynced, renamed, folder fsynced).
Checking a request against the stored size and recording the new checkpoint happen under one
lock (a thread lock and an ``flock`` on a lock file, for a second process on the same folder):
otherwise two requests could interleave and roll the record back (c2sp.org/tlog-witness).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from governance.errors import ConfigurationError
from governance.private_files import PRIVATE_FILE, create_private_file

__all__ = ["STATE_FILE", "Cosigned", "WitnessState"]

STATE_FILE = "state.json"
_LOCK_FILE = "state.lock"
_FORMAT = "warden-witness-state"


@dataclass(frozen=True, slots=True)
class Cosigned:
    """The latest checkpoint cosigned for one origin: its size, root and the cosigned note."""

    size: int
    root: bytes
    note: str


class WitnessState:
    """The per-origin record of a witness, in ``state_dir``.

    Args:
        state_dir: the witness's folder (``warden witness init`` made it).
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / STATE_FILE
        self._lock_path = state_dir / _LOCK_FILE
        self._lock = threading.Lock()
        create_private_file(self._lock_path)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock, open(self._lock_path, "rb") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _read(self) -> dict[str, Cosigned]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            doc = json.loads(raw)
            if doc.get("format") != _FORMAT:
                raise ValueError("not a witness state file")
            return {
                origin: Cosigned(
                    size=int(item["size"]),
                    root=base64.b64decode(item["root"], validate=True),
                    note=str(item["note"]),
                )
                for origin, item in doc["logs"].items()
            }
        except (ValueError, KeyError, TypeError, AttributeError):
            # Fail closed: a witness that lost its memory must not cosign from scratch.
            raise ConfigurationError(f"witness state {self.path} is unreadable") from None

    def _write(self, logs: dict[str, Cosigned]) -> None:
        doc = {
            "format": _FORMAT,
            "logs": {
                origin: {
                    "note": item.note,
                    "root": base64.b64encode(item.root).decode("ascii"),
                    "size": item.size,
                }
                for origin, item in sorted(logs.items())
            },
        }
        staging = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), PRIVATE_FILE)
            handle.write(json.dumps(doc, sort_keys=True).encode("utf-8") + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, self.path)
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def latest(self, origin: str) -> Cosigned | None:
        """The latest checkpoint cosigned for ``origin``, if any."""
        with self._locked():
            return self._read().get(origin)

    def advance(self, origin: str, check: Callable[[Cosigned | None], Cosigned]) -> Cosigned:
        """Check a request against the record of ``origin`` and store what ``check`` returns.

        Args:
            origin: the log's origin.
            check: given the current record (``None`` if never cosigned), returns the new
                record or raises; it runs under the lock, so no other request interleaves.

        Returns:
            The stored record, durable on disk.
        """
        with self._locked():
            logs = self._read()
            new = check(logs.get(origin))
            logs[origin] = new
            self._write(logs)
            return new
