"""The predict path's recorder: seal each request/response pair under its subject's data key.

:meth:`RecordStore.prepare` runs on the event loop for every allowed prediction. On a warm key
cache it does no I/O: a blind index (HMAC) and one AES-256-GCM seal. On a miss, or when the
seals this process reserved are spent, the key is loaded (and a block of seals reserved in the
database, so processes sharing a key never pass ``dek_max_uses`` between them), rotated once
it has reached ``dek_max_uses``, or created, in a worker thread, in short transactions of its
own. The sealed row is stored by the journal inside the
group-commit transaction of the request's audit entry (:mod:`governance.records.sink`): both
are durable together, or neither is.

Erasure in any process reaches every other one twice. At once: the erasure bumps the data-key
change counter, and each process drops the cached keys that are no longer active
(:meth:`RecordStore.drop_inactive`). And at the store: just before the group commit, the
states of the batch's keys are read and locked in the same transaction as the inserts, so a
destroyed key never stores a record; the record is refused as stale, the key leaves this cache
(:meth:`RecordStore.evict`), and the predict path seals the record again under the subject's
fresh key. A key rotated by another process still stores the records sealed just before
(rotation never fails a request), and leaves the cache.

A subject has one active key (a partial unique index, migration 0010): replicas racing its
first use re-read it under the audit log's head lock, which every key creation holds, and
converge on the first one made, with one "first use" audit entry.

Subject ids are scoped per client principal (:mod:`governance.records.subjects`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import zlib
from collections.abc import Collection
from typing import Any

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from governance.audit import log as audit_log
from governance.config import Settings
from governance.errors import ConfigurationError
from governance.kit.context import Context
from governance.randomness import sortable_hex
from governance.records.cache import CachedKey, KeyCache
from governance.records.errors import SubjectScopesError
from governance.records.scrubs import Scrubs
from governance.records.sink import PreparedRecord, RecordRow
from governance.records.subjects import load_subject_scopes
from governance.vault.blind_index import subject_index
from governance.vault.errors import DecryptionError, KeyProviderError
from governance.vault.kek_schedule import KekSchedule
from governance.vault.keys import data_keys, new_dek_id
from governance.vault.models import DataKey
from governance.vault.providers import ServiceKeyProvider
from governance.vault.record_format import FORMAT_VERSION, RecordFields, seal

__all__ = ["RECORD_ID_PATTERN", "RecordStore", "new_record_id", "record_plaintext", "subject_of"]

logger = logging.getLogger(__name__)
_LOCK_STRIPES = 64
# Seals reserved per database round trip: few enough that a process that dies wastes little
# of a key's limit, many enough that a busy subject costs one small update per thousand.
_RESERVE_SEALS = 1024


RECORD_ID_PATTERN = "rec_[0-9a-f]{32}"
"""Every record id Warden has made: ``rec_`` and 32 lowercase hex digits."""


def new_record_id() -> str:
    return f"rec_{sortable_hex()}"


def subject_of(*, subject_id: str | None, principal: str) -> str:
    """The data subject of a request: the one it names, else the calling principal."""
    return subject_id if subject_id is not None else f"principal:{principal}"


def record_plaintext(request_json: bytes, response_json: bytes) -> bytes:
    """What a record seals: ``{"request": ..., "response": ...}`` as one canonical document.

    Both parts are canonical JSON already, and "request" sorts before "response", so joining
    them is the canonical encoding of the whole, without encoding the payloads a second time.
    One seal per record, so the request and response cannot be swapped between records.
    """
    return b'{"request":' + request_json + b',"response":' + response_json + b"}"


class RecordStore:
    """The :class:`~governance.predict.recording.Recorder` of a server process.

    Args:
        engine, sessions, read_sessions: the process's database engine and sessions.
        cache_capacity: most subjects whose unwrapped keys are kept in memory.
    """

    def __init__(
        self,
        *,
        keys: ServiceKeyProvider,
        settings: Settings,
        engine: Engine,
        sessions: sessionmaker[Session],
        read_sessions: sessionmaker[Session],
        cache_capacity: int = 10_000,
    ) -> None:
        self._keys = keys
        self._sessions = sessions
        self._max_uses = settings.dek_max_uses
        self._blind_key = keys.blind_index_key()
        try:
            self.scopes = load_subject_scopes(settings.policies_dir)
        except SubjectScopesError as exc:
            raise ConfigurationError(f"{exc.message}; refusing to start") from None
        self.cache = KeyCache(cache_capacity)
        self._locks = tuple(threading.Lock() for _ in range(_LOCK_STRIPES))
        # What follows erasures: the destroyed keys' bytes out of the database files, and the
        # KEK that wrapped them rotated out and retired on schedule.
        self.scrubs = Scrubs(engine, sessions, read_sessions)
        self.kek_schedule = KekSchedule(
            sessions=sessions,
            keys=keys,
            period=settings.kek_rotation_period,
            holder=f"server:{socket.gethostname()[:40]}:{os.getpid()}",
        )
        self.check_keys()

    def check_keys(self) -> None:
        """Refuse to start with keys that do not open this database's data keys.

        One live data key per KEK version is unwrapped: a wrong key file (another
        installation's, or a KEK retired too early) is found now, not at the first request.

        Raises:
            ConfigurationError: a data key failed to unwrap.
        """
        try:
            with self._sessions() as session:
                samples = data_keys.samples_per_kek(session)
        except SQLAlchemyError:
            return  # no schema yet: the runtime's start reports that
        for row in samples:
            try:
                data_keys.unwrap(self._keys, row)
            except (DecryptionError, KeyProviderError) as exc:
                problem = exc.message
            else:
                continue
            raise ConfigurationError(
                f"the configured keys do not open this database's data keys (KEK "
                f"{row.kek_id}): {problem}; is this the right key file? Refusing to start"
            )

    def __repr__(self) -> str:
        return f"RecordStore(cache={self.cache!r}, max_uses={self._max_uses})"

    def tick(self) -> None:
        """The server's periodic work for records: retry pending scrubs, rotate a KEK that is
        due. Each step fails on its own; the next tick tries again."""
        try:
            self.scrubs.tick()
        except Exception as exc:
            logger.warning("erasure scrub failed: %s", type(exc).__name__)
        try:
            self.kek_schedule.tick()
        except Exception as exc:
            logger.warning("scheduled KEK rotation failed: %s", type(exc).__name__)

    def subject_ref(self, subject_id: str, *, principal: str) -> str:
        """The blind index under which a subject's keys and records are stored: the subject
        id as the calling principal's (or its shared namespace's), never another client's."""
        return subject_index(self._blind_key, self.scopes.scope_of(principal), subject_id)

    def forget(self, subject_ref: str) -> None:
        """Drop a subject's cached key (after its erasure or rotation in this process)."""
        self.cache.evict_subject(subject_ref)

    def forget_keys(self, dek_ids: Collection[str]) -> None:
        """Drop these keys from the cache (after an erasure in this process)."""
        wanted = set(dek_ids)
        for dek_id, subject_ref in self.cache.held():
            if dek_id in wanted:
                self.cache.evict_key(dek_id, subject_ref)

    def forget_all(self) -> None:
        """Drop every cached key (after a rotation of all data keys)."""
        self.cache.clear()

    def drop_inactive(self, session: Session) -> int:
        """Drop the cached keys that are no longer active (erased or rotated elsewhere).

        Called when the data-key change counter moved (:data:`governance.db.state.DATA_KEYS`):
        another process erased or rotated keys, and this one's next record for those subjects
        is sealed under the current key instead of being refused when stored.

        Returns:
            How many cached keys were dropped.
        """
        held = self.cache.held()
        active = data_keys.still_active(session, [dek_id for dek_id, _ in held])
        dropped = 0
        for dek_id, subject_ref in held:
            if dek_id not in active:
                self.cache.evict_key(dek_id, subject_ref)
                dropped += 1
        return dropped

    async def prepare(
        self,
        *,
        ctx: Context,
        principal: str,
        model: str,
        model_version: str,
        subject_id: str | None,
        request_id: str,
        request_json: bytes,
        response_json: bytes,
        row_count: int,
    ) -> PreparedRecord:
        """Seal a request/response pair and return the row to store with its audit entry.

        Raises:
            KeyProviderError: no key could be had (fail closed: the request is refused).
        """
        scope = self.scopes.scope_of(principal)
        subject = subject_of(subject_id=subject_id, principal=principal)
        ref = subject_index(self._blind_key, scope, subject)
        entry = self.cache.get(ref)
        if entry is None or entry.exhausted:
            entry = await run_in_threadpool(self._key_for, ref, scope, entry, ctx)
        entry.seals += 1
        record_id = new_record_id()
        fields = RecordFields(
            record_id=record_id,
            subject_ref=ref,
            model=model[:64],
            model_version=model_version,
            principal=principal[:64],
            request_id=request_id,
            dek_id=entry.dek_id,
            dek_version=entry.version,
        )
        sealed = seal(entry.cipher, record_plaintext(request_json, response_json), fields)
        values: dict[str, Any] = {
            "id": record_id,
            "request_id": request_id,
            "principal": fields.principal,
            "model": fields.model,
            "model_version": model_version,
            "subject_ref": ref,
            "dek_id": entry.dek_id,
            "dek_version": entry.version,
            "format_version": FORMAT_VERSION,
            "row_count": row_count,
            "blob": sealed.blob,
        }
        row = RecordRow(values, entry.dek_id, ref)
        return PreparedRecord(record_id=record_id, data_key_id=entry.dek_id, row=row)

    def evict(self, dek_id: str, subject_ref: str) -> None:
        """Stop sealing with a key the store found rotated or destroyed (see RecordSink)."""
        self.cache.evict_key(dek_id, subject_ref)

    def _lock_for(self, subject_ref: str) -> threading.Lock:
        return self._locks[zlib.crc32(subject_ref.encode("ascii")) % _LOCK_STRIPES]

    def _key_for(
        self, subject_ref: str, scope: str, held: CachedKey | None, ctx: Context
    ) -> CachedKey:
        """Reserve seals under the subject's active key, or rotate or create it (in a worker
        thread)."""
        with self._lock_for(subject_ref):
            # Another request for this subject may have done the work while this one waited.
            current = self.cache.get(subject_ref)
            if current is not None and current is not held and not current.exhausted:
                return current
            held = current or held
            # First without the log's head lock: a load is the common case, and its row lock
            # is released before any head lock is asked for (the group commit's order).
            with self._sessions.begin() as session:
                row = data_keys.active(session, subject_ref)
                entry = None if row is None else self._reserved(session, row, held)
            if entry is None:
                try:
                    with self._sessions.begin() as session:
                        entry = self._rotate_or_create(session, subject_ref, scope, held, ctx)
                except IntegrityError:
                    # Another process's active key won the one-active-key index (a creator
                    # that did not wait on the head lock): the next transaction reads it.
                    with self._sessions.begin() as session:
                        entry = self._rotate_or_create(session, subject_ref, scope, held, ctx)
            self.cache.put(entry)
            return entry

    def _reserved(self, session: Session, row: DataKey, held: CachedKey | None) -> CachedKey | None:
        """A cache entry for ``row`` with a fresh block of reserved seals; None when the key
        has reached ``dek_max_uses`` (or is no longer active)."""
        block = data_keys.reserve_uses(
            session, row.id, want=min(_RESERVE_SEALS, self._max_uses), limit=self._max_uses
        )
        if not block:
            return None
        if held is not None and held.dek_id == row.id:
            key = held.key
        else:
            key = data_keys.unwrap(self._keys, row)
        return CachedKey(row.subject_ref, row.id, row.version, key, reserved=len(block))

    def _rotate_or_create(
        self,
        session: Session,
        subject_ref: str,
        scope: str,
        held: CachedKey | None,
        ctx: Context,
    ) -> CachedKey:
        # A new key. The log's head lock comes first: before any key row is locked, the order
        # the group commit uses, so PostgreSQL cannot deadlock them; and before the KEK is read,
        # so a KEK rotation's last pass sees this key (governance/vault/rotation.py).
        audit_log.lock_head(session)
        # Every key creation holds the head lock until it commits, so a key another replica
        # made meanwhile is visible now (READ COMMITTED): racing first uses converge on it.
        row = data_keys.active(session, subject_ref, fresh=True)
        if row is not None:
            entry = self._reserved(session, row, held)
            if entry is not None:
                return entry
        dek_id = new_dek_id()
        reason = "first use" if row is None and held is None else "use count"
        audit_log.append(
            session,
            [
                ctx.event(
                    "key.create",
                    "create",
                    resource={"subject_ref": subject_ref},
                    data_key_id=dek_id,
                    details={
                        "kind": "dek",
                        "kek_id": self._keys.key_id,
                        "reason": reason,
                        "scope": scope,
                    },
                )
            ],
        )
        # Retired before the new key is inserted: the index allows one active key at a time.
        if row is not None:
            data_keys.retire(session, row.id)
        reserve = min(_RESERVE_SEALS, self._max_uses)
        created, key = data_keys.create(
            session,
            self._keys,
            subject_ref=subject_ref,
            created_by=ctx.name[:64],
            dek_id=dek_id,
            scope=scope,
            uses=reserve,
        )
        return CachedKey(subject_ref, created.id, created.version, key, reserved=reserve)
