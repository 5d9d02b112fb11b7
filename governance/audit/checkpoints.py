"""Signed checkpoints: every N entries, every T seconds, at shutdown, and only of a tree that
extends the last one signed.

The group commit signs the checkpoints that fall due as the log grows, right after the commit
that appended the entries (:meth:`Checkpointer.sign_after`): it knows the new root from the
Merkle frontier it has just computed. The server still signs the tail of a log that went quiet
(:meth:`Checkpointer.tick`) and the last head at shutdown.

Every signature goes through :meth:`Checkpointer.publish`: under the signer's file lock it
reads the signer's memory (:mod:`governance.audit.memory`), proves that the tree to sign
extends the remembered checkpoint, records the new note in the memory, and only then stores
it. Signing after the commit, never inside it, keeps a rolled-back batch from leaving the
memory ahead of the log. A tree that fails the proof is refused, and the checkpointer stays
failed (:attr:`Checkpointer.failure`): its writer refuses appends and the server stops serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Table, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from governance.audit import merkle
from governance.audit.errors import AuditIntegrityError, AuditVerificationError, MissingNodeError
from governance.audit.memory import Remembered, SignerMemory, memory_path
from governance.audit.models import AuditCheckpoint, AuditHead, AuditNode
from governance.audit.note import make_checkpoint_body, sign_note, verify_note, vkey_for
from governance.audit.signing import load_signing_key
from governance.db.base import as_utc, utcnow

if TYPE_CHECKING:
    from governance.config import Settings

logger = logging.getLogger(__name__)

_CHECKPOINTS: Table = AuditCheckpoint.__table__  # type: ignore[assignment]

Database = Session | Connection


def fetch_nodes(session: Database, keys: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
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


def latest_checkpoint_age(session: Session) -> float | None:
    """Seconds since the newest stored checkpoint was signed; None before the first."""
    created = session.scalar(select(func.max(AuditCheckpoint.created_at)))
    if created is None:
        return None
    return max((utcnow() - as_utc(created)).total_seconds(), 0.0)


def root_at(session: Database, size: int) -> bytes:
    """The Merkle root of the first ``size`` entries, from O(log n) stored nodes."""
    nodes = fetch_nodes(session, merkle.root_keys(size))
    return merkle.root_at(size, merkle.getter_from_mapping(nodes))


def _tree_size(db: Database) -> int:
    return int(db.execute(select(AuditHead.tree_size).where(AuditHead.id == 1)).scalar_one())


def check_extends(db: Database, older: tuple[int, bytes], newer: tuple[int, bytes]) -> None:
    """Prove from the stored nodes that the tree head ``newer`` extends ``older``.

    Args:
        db: the log's database.
        older: ``(size, root)`` of the earlier tree head.
        newer: ``(size, root)`` of the later one, ``size`` at least the earlier's.

    Raises:
        AuditIntegrityError: no consistency proof between them verifies.
    """
    (size1, root1), (size2, root2) = older, newer
    try:
        nodes = fetch_nodes(db, merkle.consistency_proof_keys(size1, size2))
        proof = merkle.consistency_proof(size1, size2, merkle.getter_from_mapping(nodes))
    except MissingNodeError:
        proof = None
    if proof is None or not merkle.verify_consistency(size1, size2, proof, root1, root2):
        raise AuditIntegrityError(
            f"the log's tree at size {size2} does not extend the checkpoint signed at size "
            f"{size1}: history was rewritten, truncated or forked in the database"
        )


@dataclass(frozen=True)
class CheckpointPolicy:
    """Which log, which key and how often: what a journal writer process needs to sign.

    ``every_seconds`` is also the longest the newest entries stay unsigned while the server
    runs: the group commit signs by count, the server's timer signs a quiet tail by age.
    """

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
    """Decides when to sign a checkpoint, and signs only trees that extend the last one.

    Args:
        origin: the log's origin line (also the signing key's name).
        key: the Ed25519 signing key.
        memory: the signer's memory of its last checkpoint (beside the key file).
        every_entries: sign when this many entries were added since the last checkpoint.
        every_seconds: sign when this long has passed since the last one and entries were added.
        clock: monotonic seconds that measure ``every_seconds`` (tests inject one).
        now: the time stored with a checkpoint and that ages stored ones (moves with ``clock``).
    """

    def __init__(
        self,
        origin: str,
        key: Ed25519PrivateKey,
        *,
        memory: SignerMemory,
        every_entries: int,
        every_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.origin = origin
        self.key = key
        self.memory = memory
        self.every_entries = every_entries
        self.every_seconds = every_seconds
        self.failure: str | None = None  # set once a tree was refused: sticky, fail closed
        self._clock = clock
        self._now = now
        self._checked = False
        self._last_size = -1
        self._last_time = clock()
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
    def from_policy(
        cls,
        policy: CheckpointPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
    ) -> Checkpointer:
        """The checkpointer a policy describes, its key loaded from its file.

        Raises:
            ConfigurationError: the signing key is missing, unsafe or malformed.
        """
        key_file = Path(policy.signing_key_file)
        key = load_signing_key(key_file)
        return cls(
            policy.origin,
            key,
            memory=SignerMemory(memory_path(key_file), vkey_for(policy.origin, key.public_key())),
            every_entries=policy.every_entries,
            every_seconds=policy.every_seconds,
            clock=clock,
            now=now,
        )

    # -- integrity -------------------------------------------------------------------------

    @contextmanager
    def _failing(self) -> Iterator[None]:
        try:
            yield
        except AuditIntegrityError as exc:
            if self.failure is None:
                logger.critical("audit log integrity: %s; refusing to sign or serve", exc.message)
                self.failure = exc.message
            raise

    def refusal(self, db: Database) -> str | None:
        """Why this signer refuses the log (None: it does not).

        The first call checks the stored tree against the memory (:meth:`check`), so a
        process started on a rewritten log refuses before it appends anything.
        """
        if self.failure is None and not self._checked:
            with suppress(AuditIntegrityError):  # recorded in self.failure
                self.check(db)
            self._checked = True
        return self.failure

    def check(self, db: Database) -> Remembered | None:
        """Prove that the stored tree extends the signer's remembered checkpoint.

        Returns:
            The remembered checkpoint (None: this signer has signed nothing yet).

        Raises:
            AuditIntegrityError: the log is shorter than what was signed, or its tree does not
                extend it.
        """
        with self._failing():
            last = self.memory.read() or self._latest_stored(db)
            if last is None:
                return None
            size = self._check_not_behind(db, last)
            check_extends(db, (last.size, last.root), (size, root_at(db, size)))
            return last

    @staticmethod
    def _check_not_behind(db: Database, last: Remembered) -> int:
        """The log's size, refused if it is shorter than the tree the signer signed."""
        size = _tree_size(db)
        if size < last.size:
            raise AuditIntegrityError(
                f"the log holds {size} entries but the signer signed a tree of {last.size}: "
                "entries were removed from the database"
            )
        return size

    def publish(self, db: Database, size: int, root: bytes) -> bool:
        """Sign the tree head ``(size, root)`` and store it, if it extends the last one signed.

        Under the signer's file lock: read the memory, prove consistency from it to this head
        with the stored nodes, write the new note to the memory (durably), then insert it in
        ``db``'s transaction. A head at or behind the memory (another process signed further)
        is proved against it and signs nothing.

        Returns:
            Whether a new checkpoint was signed.

        Raises:
            AuditIntegrityError: this tree does not extend the remembered checkpoint, or the
                database holds another checkpoint at a size the signer signed; or the signer
                refused a tree before.
        """
        if self.failure is not None:
            raise AuditIntegrityError(self.failure)
        with self._failing(), self.memory.locked():
            last = self.memory.read()
            if last is None:
                last = self._latest_stored(db)
                if last is not None:
                    self.memory.write(last.note)
            if last is not None:
                if size <= last.size:
                    self._check_not_behind(db, last)
                    check_extends(db, (size, root), (last.size, last.root))
                    self._store(db, last.size, last.root, last.note)
                    self.mark(last.size)  # another process signed further: due from there
                    return False
                check_extends(db, (last.size, last.root), (size, root))
                # Signed, but its insert was lost (a crash or a rolled-back transaction).
                self._store(db, last.size, last.root, last.note)
            note = sign_note(make_checkpoint_body(self.origin, size, root), self.origin, self.key)
            self.memory.write(note)
            self._store(db, size, root, note)
        return True

    def _latest_stored(self, db: Database) -> Remembered | None:
        """Without a memory (first start after an upgrade, or a new signer host), the newest
        stored checkpoint this key signed is where the memory starts: trust on first use."""
        rows = db.execute(
            select(AuditCheckpoint.note).order_by(AuditCheckpoint.tree_size.desc()).limit(16)
        )
        for (note,) in rows:
            try:
                checkpoint = verify_note(note, self.memory.vkey, origin=self.origin)
            except AuditVerificationError:
                continue  # not this key's: verification reports it, the memory ignores it
            logger.warning(
                "the signer has no memory at %s: starting from the stored checkpoint at %d",
                self.memory.path,
                checkpoint.size,
            )
            return Remembered(checkpoint, note)
        return None

    def _store(self, db: Database, size: int, root: bytes, note: str) -> None:
        stored = db.execute(
            select(AuditCheckpoint.root_hash).where(AuditCheckpoint.tree_size == size)
        ).scalar_one_or_none()
        if stored is None:
            try:
                with db.begin_nested():
                    db.execute(
                        insert(_CHECKPOINTS).values(
                            tree_size=size, created_at=self._now(), root_hash=root, note=note
                        )
                    )
                return
            except IntegrityError:
                # Another signer's transaction stored it after our read (it held the lock
                # before us): it must be the same head.
                stored = db.execute(
                    select(AuditCheckpoint.root_hash).where(AuditCheckpoint.tree_size == size)
                ).scalar_one_or_none()
        if stored is not None and stored != root:
            raise AuditIntegrityError(
                f"the database holds a checkpoint at size {size} whose root is not the one "
                "the signer signed"
            )

    # -- when ------------------------------------------------------------------------------

    def due(self, size: int) -> bool:
        """Whether a checkpoint at ``size`` may be due, without touching the database.

        The group commit asks after every batch: most of the time the answer is no, and costs
        no read.
        """
        with self._lock:
            if self._last_size < 0:
                return True
            return size - self._last_size >= self.every_entries or (
                size > self._last_size and self._clock() - self._last_time >= self.every_seconds
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

        Raises:
            AuditIntegrityError: the tree does not extend the last checkpoint signed.
        """
        now = self._clock()
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

    def sign_after(self, connection: Connection, size: int, root: Callable[[], bytes]) -> bool:
        """Sign the tree head at ``size``, committed just before, if a checkpoint is due.

        The group commit calls it in a transaction of its own after each batch's commit, with
        the root of the tree it has just grown; it marks the checkpoint itself once that
        transaction commits (:meth:`mark`).

        Returns:
            Whether a checkpoint was signed.

        Raises:
            AuditIntegrityError: the tree does not extend the last checkpoint signed.
        """
        if not self._due_from_the_log(connection, size):
            return False
        return self.publish(connection, size, root())

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
        age = max((self._now() - as_utc(created)).total_seconds(), 0.0)
        with self._lock:
            if size >= self._last_size:
                self._last_size = size
                self._last_time = self._clock() - age

    def checkpoint(self, session: Session, *, force: bool = False) -> AuditCheckpoint | None:
        """Sign the current tree head (at shutdown, at an export, or on demand).

        Raises:
            AuditIntegrityError: the tree does not extend the last checkpoint signed.
        """
        from governance.audit.log import tree_size

        size = tree_size(session)
        if size == 0 or (not force and size == self._last_size):
            return None
        return self._write(session, size)

    def _write(self, session: Session, size: int) -> AuditCheckpoint | None:
        self.publish(session, size, root_at(session, size))
        self.mark(size)
        return session.get(AuditCheckpoint, size)

    def mark(self, size: int) -> None:
        """A checkpoint at ``size`` is stored: the next falls due from here."""
        with self._lock:
            self._last_size = max(self._last_size, size)
            self._last_time = self._clock()
