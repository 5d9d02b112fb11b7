"""Signed checkpoints: every N entries, every T seconds, and at shutdown.

The group commit signs the checkpoints that fall due as the log grows, inside the transaction
that appends the entries (:meth:`Checkpointer.sign_in`): it knows the new root from the Merkle
frontier it has just computed, and its transaction already holds the log's write lock. Signed
by the server's poller thread in a transaction of its own (until stop 21), each checkpoint
read its nodes, took the GIL from the event loop, waited for the write lock, made the writer
wait in turn and cost an fsync of its own. In ``bench/predict`` at 32 clients (checkpoints every
1,000 entries, about six a second), three alternating pairs gave a governed/bare ratio of
0.599, 0.566, 0.582 signed in the commit against 0.548, 0.531, 0.533 signed by the server, and
a governed p99 of 9.2-11.8 ms against 14.0-15.5. The server still signs the tail of a log that
went quiet (:meth:`Checkpointer.tick`) and the last head at shutdown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from governance.audit import merkle
from governance.audit.models import AuditCheckpoint, AuditNode
from governance.audit.note import make_checkpoint_body, sign_note
from governance.audit.signing import load_signing_key
from governance.config import Settings
from governance.db.base import as_utc, utcnow

_CHECKPOINTS: Table = AuditCheckpoint.__table__  # type: ignore[assignment]


def fetch_nodes(session: Session, keys: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """Stored Merkle nodes by (level, index), in one query per level."""
    found: dict[tuple[int, int], bytes] = {}
    by_level: dict[int, list[int]] = {}
    for level, idx in keys:
        by_level.setdefault(level, []).append(idx)
    for level, idxs in by_level.items():
        rows = session.execute(
            select(AuditNode.idx, AuditNode.hash).where(
                AuditNode.level == level, AuditNode.idx.in_(idxs)
            )
        )
        found.update({(level, idx): h for idx, h in rows})
    return found


def root_at(session: Session, size: int) -> bytes:
    """The Merkle root of the first ``size`` entries, from O(log n) stored nodes."""
    nodes = fetch_nodes(session, merkle.root_keys(size))
    return merkle.root_at(size, merkle.getter_from_mapping(nodes))


@dataclass(frozen=True)
class CheckpointPolicy:
    """Which log, which key and how often: what a journal writer process needs to sign."""

    origin: str
    signing_key_file: str
    every_entries: int
    every_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> CheckpointPolicy:
        return cls(
            settings.log_origin,
            str(settings.resolved_signing_key_file),
            settings.checkpoint_every_entries,
            settings.checkpoint_every_seconds,
        )


class Checkpointer:
    """Decides when to sign a checkpoint and writes it.

    Args:
        origin: the log's origin line (also the signing key's name).
        key: the Ed25519 signing key.
        every_entries: sign when this many entries were added since the last checkpoint.
        every_seconds: sign when this long has passed since the last one and entries were added.
    """

    def __init__(
        self, origin: str, key: Ed25519PrivateKey, *, every_entries: int, every_seconds: float
    ) -> None:
        self.origin = origin
        self.key = key
        self.every_entries = every_entries
        self.every_seconds = every_seconds
        self._last_size = -1
        self._last_time = time.monotonic()
        self._next_tick = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, _sessions: sessionmaker[Session] | None = None
    ) -> Checkpointer:
        """The checkpointer of the configured log origin and signing key.

        Raises:
            ConfigurationError: the signing key is missing, unsafe or malformed.
        """
        return cls.from_policy(CheckpointPolicy.from_settings(settings))

    @classmethod
    def from_policy(cls, policy: CheckpointPolicy) -> Checkpointer:
        """The checkpointer a policy describes, its key loaded from its file.

        Raises:
            ConfigurationError: the signing key is missing, unsafe or malformed.
        """
        return cls(
            policy.origin,
            load_signing_key(Path(policy.signing_key_file)),
            every_entries=policy.every_entries,
            every_seconds=policy.every_seconds,
        )

    def due(self, size: int) -> bool:
        """Whether a checkpoint at ``size`` may be due, without touching the database.

        The group commit asks in every batch's transaction: most of the time the answer is no,
        and costs no read.
        """
        with self._lock:
            if self._last_size < 0:
                return True
            return size - self._last_size >= self.every_entries or (
                size > self._last_size and time.monotonic() - self._last_time >= self.every_seconds
            )

    def maybe_checkpoint(self, session: Session, size: int) -> AuditCheckpoint | None:
        due = self._due_from_the_log(session.connection(), size)
        return self._write(session, size) if due else None

    def _due_from_the_log(self, connection: Connection, size: int) -> bool:
        """:meth:`due`, reading the newest stored checkpoint first if none is known yet."""
        if not self.due(size):
            return False
        with self._lock:
            unknown = self._last_size < 0
        if unknown:
            self._learn_latest(connection)
            return self.due(size)
        return True

    def tick(self, sessions: sessionmaker[Session]) -> AuditCheckpoint | None:
        """Sign when ``every_seconds`` passed and entries were added, even with no traffic.

        Checkpoints are otherwise signed only by the group commit, so the last entries before a
        quiet spell would stay unsigned; a periodic thread (the runtime's state poller) calls
        this. Cheap when nothing is due: no database access at all until
        ``every_seconds`` have passed, then at most one small read per quarter period.

        Args:
            sessions: makes sessions on the log's database.

        Returns:
            The checkpoint signed now, if any.
        """
        now = time.monotonic()
        with self._lock:
            if now - self._last_time < self.every_seconds or now < self._next_tick:
                return None
            self._next_tick = now + min(1.0, self.every_seconds / 4)
        from governance.audit.log import tree_size

        with sessions.begin() as session:
            # The group commit signs as the log grows (perhaps in another process): what is
            # due is measured from the newest checkpoint, whoever signed it.
            self._learn_latest(session.connection())
            return self.maybe_checkpoint(session, tree_size(session))

    def sign_in(self, connection: Connection, size: int, root: Callable[[], bytes]) -> bool:
        """Sign the tree head at ``size`` in the caller's transaction, if a checkpoint is due.

        The group commit calls it before committing a batch, with the root of the tree it has
        just grown. Call :meth:`mark` once the transaction committed; if it rolls back, the
        checkpoint goes with it and falls due again at the next commit.

        Returns:
            Whether a checkpoint was inserted.
        """
        if not self._due_from_the_log(connection, size):
            return False
        connection.execute(insert(_CHECKPOINTS).values(**self._signed(size, root())))
        return True

    def _learn_latest(self, connection: Connection) -> None:
        """Take the newest stored checkpoint as the last one (its age from its time)."""
        row = connection.execute(
            select(AuditCheckpoint.tree_size, AuditCheckpoint.created_at)
            .order_by(AuditCheckpoint.tree_size.desc())
            .limit(1)
        ).first()
        if row is None:
            with self._lock:
                self._last_size = max(self._last_size, 0)
            return
        size, created = row
        age = max((utcnow() - as_utc(created)).total_seconds(), 0.0)
        with self._lock:
            if size >= self._last_size:
                self._last_size = size
                self._last_time = time.monotonic() - age

    def checkpoint(self, session: Session, *, force: bool = False) -> AuditCheckpoint | None:
        """Sign the current tree head (at shutdown, or on demand)."""
        from governance.audit.log import tree_size

        size = tree_size(session)
        if size == 0 or (not force and size == self._last_size):
            return None
        return self._write(session, size)

    def _write(self, session: Session, size: int) -> AuditCheckpoint | None:
        existing = session.get(AuditCheckpoint, size)
        if existing is not None:
            self.mark(size)
            return existing
        row = AuditCheckpoint(**self._signed(size, root_at(session, size)))
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            # Another process signed the same size first: its checkpoint is as good.
            return session.get(AuditCheckpoint, size)
        self.mark(size)
        return row

    def _signed(self, size: int, root: bytes) -> dict[str, Any]:
        """The row of the checkpoint at ``size``: its signed note and root."""
        body = make_checkpoint_body(self.origin, size, root)
        return {
            "tree_size": size,
            "created_at": utcnow(),
            "root_hash": root,
            "note": sign_note(body, self.origin, self.key),
        }

    def mark(self, size: int) -> None:
        """A checkpoint at ``size`` is stored: the next falls due from here."""
        with self._lock:
            self._last_size = max(self._last_size, size)
            self._last_time = time.monotonic()
