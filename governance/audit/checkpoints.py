"""Signed checkpoints: every N entries, every T seconds, and at shutdown."""

from __future__ import annotations

import threading
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from governance.audit import merkle
from governance.audit.models import AuditCheckpoint, AuditNode
from governance.audit.note import make_checkpoint_body, sign_note
from governance.audit.signing import load_signing_key
from governance.config import Settings
from governance.db.base import utcnow


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
        return cls(
            settings.log_origin,
            load_signing_key(settings.resolved_signing_key_file),
            every_entries=settings.checkpoint_every_entries,
            every_seconds=settings.checkpoint_every_seconds,
        )

    def due(self, size: int) -> bool:
        """Whether a checkpoint at ``size`` may be due, without touching the database.

        The group-commit writer asks after every commit; opening a write transaction each time
        would cost a second fsync per batch on SQLite.
        """
        with self._lock:
            if self._last_size < 0:
                return True
            return size - self._last_size >= self.every_entries or (
                size > self._last_size and time.monotonic() - self._last_time >= self.every_seconds
            )

    def maybe_checkpoint(self, session: Session, size: int) -> AuditCheckpoint | None:
        with self._lock:
            if self._last_size < 0:
                last = session.scalar(
                    select(AuditCheckpoint.tree_size)
                    .order_by(AuditCheckpoint.tree_size.desc())
                    .limit(1)
                )
                self._last_size = last or 0
            due = size - self._last_size >= self.every_entries or (
                size > self._last_size and time.monotonic() - self._last_time >= self.every_seconds
            )
        return self._write(session, size) if due else None

    def tick(self, sessions: sessionmaker[Session]) -> AuditCheckpoint | None:
        """Sign when ``every_seconds`` passed and entries were added, even with no traffic.

        Checkpoints are otherwise considered only after an append commits, so the last
        entries before a quiet spell would stay unsigned; a periodic thread (the runtime's
        state poller) calls this. Cheap when nothing is due: no database access at all until
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
            return self.maybe_checkpoint(session, tree_size(session))

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
            self._mark(size)
            return existing
        root = root_at(session, size)
        body = make_checkpoint_body(self.origin, size, root)
        row = AuditCheckpoint(
            tree_size=size,
            created_at=utcnow(),
            root_hash=root,
            note=sign_note(body, self.origin, self.key),
        )
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            # Another process signed the same size first: its checkpoint is as good.
            return session.get(AuditCheckpoint, size)
        self._mark(size)
        return row

    def _mark(self, size: int) -> None:
        with self._lock:
            self._last_size = max(self._last_size, size)
            self._last_time = time.monotonic()
