"""The signer's memory: the last checkpoint it signed, kept beside its key, outside the database.

Whoever writes the database can rewrite entries and recompute every stored node, but cannot
make the signer forget what it signed. The memory is that checkpoint's signed note, in a 0600
file next to the signing key; :mod:`governance.audit.checkpoints` signs a new tree head only
once a consistency proof from it verifies, and records the new note here (write, fsync,
rename) before publishing it. Processes that share one key file share this file: each reads,
checks and writes it under an exclusive ``flock`` on a lock file beside it.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from governance.audit.errors import AuditIntegrityError, AuditVerificationError
from governance.audit.note import Checkpoint, VerifierKey, parse_vkey, verify_note
from governance.private_files import PRIVATE_FILE, open_private

__all__ = ["Remembered", "SignerMemory", "memory_path"]

# A checkpoint note is a few hundred bytes; witness cosignatures add a line each.
_MAX_NOTE = 64 * 1024


def memory_path(signing_key_file: Path) -> Path:
    """Where the signer of ``signing_key_file`` keeps its last checkpoint."""
    return signing_key_file.with_name(signing_key_file.name + ".checkpoint")


@dataclass(frozen=True, slots=True)
class Remembered:
    """The last checkpoint the signer signed: parsed, and the signed note itself."""

    checkpoint: Checkpoint
    note: str

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root


class SignerMemory:
    """The state file of one signing key.

    Args:
        path: the state file (see :func:`memory_path`).
        vkey: the signer's verifier key; the remembered note must verify under it.
    """

    def __init__(self, path: Path, vkey: str | VerifierKey) -> None:
        self.path = path
        self.vkey = parse_vkey(vkey) if isinstance(vkey, str) else vkey
        self._lock_path = path.with_name(path.name + ".lock")

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the exclusive lock that orders every signer sharing this file (all processes)."""
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        try:
            os.fchmod(fd, PRIVATE_FILE)
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> Remembered | None:
        """The remembered checkpoint, or None if this signer never signed one.

        Raises:
            AuditIntegrityError: the file is there but unreadable, too large, or not a note
                this key signed for this log: the memory cannot be trusted, so nothing is.
        """
        try:
            with self.path.open("rb") as handle:
                data = handle.read(_MAX_NOTE + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AuditIntegrityError(
                f"the signer's state file {self.path} cannot be read ({exc.strerror})"
            ) from None
        if len(data) > _MAX_NOTE:
            raise AuditIntegrityError(f"the signer's state file {self.path} is too large")
        try:
            checkpoint = verify_note(data, self.vkey, origin=self.vkey.name)
            note = data.decode("utf-8")
        except (AuditVerificationError, UnicodeDecodeError):
            raise AuditIntegrityError(
                f"the signer's state file {self.path} is not a checkpoint signed by this key"
            ) from None
        return Remembered(checkpoint, note)

    def write(self, note: str) -> None:
        """Replace the remembered note atomically and durably (write, fsync, rename, fsync).

        Call under :meth:`locked`. A crash leaves either the old note or the new one, never a
        torn file: the rename is atomic and the folder is synced after it.
        """
        staging = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}.tmp")
        try:
            with open_private(staging) as handle:
                handle.write(note.encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(staging, self.path)
        except BaseException:
            staging.unlink(missing_ok=True)
            raise
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
