"""Data-key (DEK) management: create, load, rotate, destroy and rewrap wrapped DEK rows.

Every DEK row holds the key wrapped by the provider's KEK, bound to the row's id, subject
reference and version (see :mod:`governance.vault.envelope`). The service is stateless and
never commits; the unwrapped keys that the hot path caches live in
:mod:`governance.records.cache`, not here.

Lifecycle: ``active`` (seals new records) → ``decrypt_only`` (rotated: opens old records) →
``destroyed`` (erased: the wrapped copy is overwritten with NULL, records become unreadable).
A destroyed key never comes back: every update here is conditional on the state it expects.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Collection, Sequence
from typing import cast

from sqlalchemy import BindParameter, Connection, Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from governance.audit import log as audit_log
from governance.db import state
from governance.db.base import utcnow
from governance.db.direct import DirectStatement
from governance.kit.context import Context
from governance.vault.blind_index import blind_index, subject_index
from governance.vault.envelope import (
    WRAP_FORMAT,
    DekBinding,
    new_dek,
    rewrap,
    unwrap_dek,
    wrap_dek,
)
from governance.vault.errors import KeyDestroyed
from governance.vault.models import ACTIVE, DECRYPT_ONLY, DESTROYED, DataKey, KeyRotation
from governance.vault.providers import KeyProvider, WrappedKey

__all__ = [
    "UNSCOPED",
    "DataKeyService",
    "binding_of",
    "data_keys",
    "new_dek_id",
]


def new_dek_id() -> str:
    """A random DEK id; random so that it reveals nothing about the subject."""
    return f"dek_{uuid.uuid4().hex}"


_KEYS = cast(Table, DataKey.__table__)

UNSCOPED = "unscoped"
"""The scope label of keys made before subjects were scoped per client (migration 0010)."""


@functools.cache
def _lock_states_statement(size: int) -> DirectStatement:
    """The lock-and-read statement for an IN list of ``size`` ids. Only powers of two are
    asked for (a batch's ids are padded by repeating the last one), so a handful of prepared
    statements serve every batch."""
    ids: list[BindParameter[str]] = [bindparam(f"id{i}") for i in range(size)]
    return DirectStatement(
        select(_KEYS.c.id, _KEYS.c.state).where(_KEYS.c.id.in_(ids)).with_for_update()
    )


def binding_of(row: DataKey) -> DekBinding:
    """What a stored row's wrapped key must be bound to, as the row says now."""
    return DekBinding(
        dek_id=row.id,
        subject_ref=row.subject_ref,
        version=int(row.version),
        wrap_format=int(row.wrap_format or 1),
    )


class DataKeyService:
    """Stateless; one instance per module. Never commits: the caller owns the transaction."""

    def create(
        self,
        session: Session,
        keys: KeyProvider,
        *,
        subject_ref: str,
        created_by: str,
        dek_id: str | None = None,
        scope: str | None = None,
        uses: int = 0,
    ) -> tuple[DataKey, bytes]:
        """Create a new active DEK for a subject, wrapped by the current KEK.

        Args:
            session: the caller's transaction.
            keys: the key provider.
            subject_ref: the subject's blind index.
            created_by: who (or what) asked for it.
            dek_id: the new key's id, when the caller needs it first (an audit entry);
                :func:`new_dek_id` by default.
            scope: the scope the subject reference was computed in
                (:func:`~governance.vault.blind_index.subject_index`).
            uses: seals reserved for the creator at once (see :meth:`reserve_uses`).

        Returns:
            The new row (flushed) and the unwrapped key.

        Raises:
            KeyProviderError: the KEK is unavailable (fail closed: no key, no record).
        """
        newest = session.scalar(
            select(func.max(DataKey.version)).where(DataKey.subject_ref == subject_ref)
        )
        dek_id = dek_id or new_dek_id()
        dek = new_dek()
        version = (newest or 0) + 1
        binding = DekBinding(dek_id=dek_id, subject_ref=subject_ref, version=version)
        wrapped = wrap_dek(keys, dek, binding=binding)
        row = DataKey(
            id=dek_id,
            subject_ref=subject_ref,
            scope=scope,
            version=version,
            state=ACTIVE,
            kek_id=wrapped.kek_id,
            wrapped=wrapped.blob,
            wrap_format=WRAP_FORMAT,
            uses=uses,
            created_at=utcnow(),
            created_by=created_by,
        )
        session.add(row)
        session.flush()
        return row, dek

    def active(self, session: Session, subject_ref: str, *, fresh: bool = False) -> DataKey | None:
        """The subject's active DEK (at most one: migration 0010), or None.

        Args:
            fresh: overwrite a row this session loaded earlier with the database's values
                (a re-read under a lock, after another process may have used the key).
        """
        query = (
            select(DataKey)
            .where(DataKey.subject_ref == subject_ref, DataKey.state == ACTIVE)
            .order_by(DataKey.version.desc())
            .limit(1)
        )
        if fresh:
            query = query.execution_options(populate_existing=True)
        return session.scalar(query)

    def subject_refs(self, session: Session, blind_key: bytes, subject_id: str) -> dict[str, str]:
        """A subject id's reference in every scope that holds data keys, and unscoped.

        Returns:
            ``{scope: subject_ref}``; the unscoped reference (keys made before migration
            0010) under :data:`UNSCOPED`.

        Raises:
            ValueError, TypeError: the subject id is empty or not text.
        """
        refs = {UNSCOPED: blind_index(blind_key, subject_id)}
        scopes = session.scalars(select(DataKey.scope).where(DataKey.scope.is_not(None)).distinct())
        for scope in scopes:
            refs[str(scope)] = subject_index(blind_key, str(scope), subject_id)
        return refs

    def live_refs(self, session: Session, subject_refs: Collection[str]) -> set[str]:
        """Which of these subject references still have a key that is not destroyed."""
        return set(
            session.scalars(
                select(DataKey.subject_ref)
                .where(DataKey.subject_ref.in_(list(subject_refs)), DataKey.state != DESTROYED)
                .distinct()
            )
        )

    def get(self, session: Session, dek_id: str) -> DataKey | None:
        return session.get(DataKey, dek_id)

    def unwrap(self, keys: KeyProvider, row: DataKey) -> bytes:
        """The unwrapped key of a DEK row.

        Raises:
            KeyDestroyed: the key was destroyed by an erasure.
            DecryptionError: the wrapped key was altered, moved to another row, or relabelled
                with another subject or version.
            KeyProviderError: its KEK is unavailable.
        """
        if row.state == DESTROYED or row.wrapped is None or row.kek_id is None:
            raise KeyDestroyed(
                f"data key {row.id} was destroyed by an erasure; what it sealed is unreadable"
            )
        wrapped = WrappedKey(kek_id=row.kek_id, blob=row.wrapped)
        return unwrap_dek(keys, wrapped, binding=binding_of(row))

    def lock_states(self, connection: Connection, dek_ids: Collection[str]) -> dict[str, str]:
        """The states of some DEKs, locked until the transaction ends.

        The transaction that stores records calls it, so an erasure that committed first is
        seen, and one that commits later waits for this transaction (``FOR UPDATE`` on
        PostgreSQL; SQLite transactions hold the write lock from ``BEGIN IMMEDIATE``).

        Returns:
            ``{dek_id: state}``; a missing id is absent.
        """
        # Once per group commit, on the hot path: a prepared statement on the DBAPI cursor
        # (an expanding IN through SQLAlchemy cost about as much as the batch's inserts).
        ids = list(dict.fromkeys(dek_ids))
        if not ids:
            return {}
        size = 1 << (len(ids) - 1).bit_length()
        padded = ids + [ids[-1]] * (size - len(ids))
        rows = _lock_states_statement(size).execute(
            connection, {f"id{i}": dek_id for i, dek_id in enumerate(padded)}
        )
        return {dek_id: state for dek_id, state in rows}

    def still_active(self, session: Session, dek_ids: Sequence[str]) -> set[str]:
        """Which of these DEKs are active now (a cache's check after erasures or rotations)."""
        found: set[str] = set()
        for start in range(0, len(dek_ids), 500):
            chunk = list(dek_ids[start : start + 500])
            found.update(
                session.scalars(
                    select(DataKey.id).where(DataKey.id.in_(chunk), DataKey.state == ACTIVE)
                )
            )
        return found

    def reserve_uses(self, session: Session, dek_id: str, *, want: int, limit: int) -> range:
        """Reserve up to ``want`` seals under an active DEK, never past ``limit`` in all.

        The count lives in the database and moves by one atomic ``UPDATE``, so processes
        that share a key never seal past the limit between them, whatever each one has seen.

        Returns:
            The reserved use numbers (empty: the key is used up, or no longer active).
        """
        for attempt in (want, None):
            if attempt is None:
                used = session.scalar(select(DataKey.uses).where(DataKey.id == dek_id))
                attempt = min(want, limit - int(used or 0))
                if used is None or attempt <= 0:
                    return range(0)
            end = session.scalar(
                update(DataKey)
                .where(
                    DataKey.id == dek_id,
                    DataKey.state == ACTIVE,
                    DataKey.uses <= limit - attempt,
                )
                .values(uses=DataKey.uses + attempt)
                .returning(DataKey.uses)
                .execution_options(synchronize_session=False)
            )
            if end is not None:
                return range(int(end) - attempt, int(end))
        return range(0)

    def retire(self, session: Session, dek_id: str) -> bool:
        """Move one active DEK to decrypt-only (use-count rotation).

        Returns:
            Whether it was still active (another process may have rotated it first).
        """
        result = session.execute(
            update(DataKey)
            .where(DataKey.id == dek_id, DataKey.state == ACTIVE)
            .values(state=DECRYPT_ONLY, rotated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def rotate(
        self,
        session: Session,
        ctx: Context,
        *,
        subject_ref: str | None = None,
        reason: str,
        subject_refs: Collection[str] | None = None,
    ) -> int:
        """Rotate on demand: every active DEK (or one subject's) becomes decrypt-only.

        New records get a new DEK on their next use. Nothing is re-encrypted and nothing fails:
        a record sealed just before the rotation is still stored (see :meth:`record_use`).

        Args:
            session: the caller's transaction.
            ctx: who rotates, for the audit entry.
            subject_ref: limit the rotation to one subject's keys.
            reason: why (stored and audited).
            subject_refs: limit it to these subject references (one subject id's, in every
                scope: :meth:`subject_refs`).

        Returns:
            How many keys were rotated.
        """
        audit_log.lock_head(session)
        query = (
            update(DataKey)
            .where(DataKey.state == ACTIVE)
            .values(state=DECRYPT_ONLY, rotated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        refs = None if subject_refs is None else sorted(subject_refs)
        if subject_ref is not None:
            refs = [subject_ref, *(refs or [])]
        if refs is not None:
            query = query.where(DataKey.subject_ref.in_(refs))
        count = int(session.execute(query).rowcount)  # type: ignore[attr-defined]
        state.bump(session, state.DATA_KEYS)  # other processes drop the rotated keys they hold
        self._log_rotation(session, ctx, kind="dek", reason=reason, count=count)
        resource: dict[str, object] = {"keys": "dek"}
        if refs is not None:
            resource = {"subject_ref": refs[0]} if len(refs) == 1 else {"subject_refs": refs}
        audit_log.append(
            session,
            [
                ctx.event(
                    "key.rotate",
                    "rotate",
                    resource=resource,
                    details={"kind": "dek", "keys_rotated": count, "reason": reason[:200]},
                )
            ],
        )
        return count

    def destroy_subject(self, session: Session, *, subject_ref: str, by: str) -> list[DataKey]:
        """Destroy every remaining DEK of a subject (crypto-shredding); see
        :meth:`destroy_subjects`."""
        return self.destroy_subjects(session, subject_refs=[subject_ref], by=by)

    def destroy_subjects(
        self,
        session: Session,
        *,
        subject_refs: Collection[str],
        by: str,
        dek_ids: Collection[str] = (),
    ) -> list[DataKey]:
        """Destroy every remaining DEK of some subject references (crypto-shredding).

        The wrapped copies are overwritten with NULL; on SQLite, ``secure_delete`` makes the
        database zero the freed bytes instead of leaving them in free pages.

        Args:
            subject_refs: destroy the keys whose row names one of these subjects.
            dek_ids: destroy these keys too, whatever subject their row names (the keys the
                subject's records name: a relabelled ``subject_ref`` column hides nothing).

        Returns:
            The keys destroyed now (keys destroyed earlier are not listed again).
        """
        audit_log.lock_head(session)  # the caller audits the erasure in this transaction
        rows = list(
            session.scalars(
                select(DataKey)
                .where(
                    DataKey.subject_ref.in_(list(subject_refs)) | DataKey.id.in_(list(dek_ids)),
                    DataKey.state != DESTROYED,
                )
                .order_by(DataKey.version, DataKey.id)
                .with_for_update()
            )
        )
        if not rows:
            return []
        now = utcnow()
        # Other processes drop these keys from their caches as soon as this commits.
        state.bump(session, state.DATA_KEYS)
        session.execute(
            update(DataKey)
            .where(DataKey.id.in_([r.id for r in rows]), DataKey.state != DESTROYED)
            .values(state=DESTROYED, wrapped=None, kek_id=None, destroyed_at=now, destroyed_by=by)
            .execution_options(synchronize_session=False)
        )
        for row in rows:
            session.refresh(row)
        return rows

    def rewrap_batch(self, session: Session, keys: KeyProvider, *, limit: int = 500) -> int:
        """Rewrap up to ``limit`` DEKs not yet under the current KEK as format 2 (KEK rotation).

        Call it in successive transactions until it returns 0, so a long rotation never holds
        the write lock for long. Records are not touched: their DEKs do not change.

        Returns:
            How many rows were rewrapped in this batch.

        Raises:
            DecryptionError: a wrapped key was altered (the transaction should roll back).
            KeyProviderError: an old KEK is unavailable.
        """
        current = keys.key_id
        rows = list(
            session.scalars(
                select(DataKey)
                .where(
                    DataKey.state != DESTROYED,
                    (DataKey.kek_id != current) | (DataKey.wrap_format != WRAP_FORMAT),
                )
                .order_by(DataKey.id)
                .limit(limit)
            )
        )
        done = 0
        for row in rows:
            assert row.kek_id is not None and row.wrapped is not None
            wrapped = WrappedKey(kek_id=row.kek_id, blob=row.wrapped)
            moved = rewrap(keys, wrapped, binding=binding_of(row))
            # Conditional: an erasure that committed meanwhile must not be undone.
            result = session.execute(
                update(DataKey)
                .where(
                    DataKey.id == row.id, DataKey.kek_id == row.kek_id, DataKey.state != DESTROYED
                )
                .values(kek_id=moved.kek_id, wrapped=moved.blob, wrap_format=WRAP_FORMAT)
                .execution_options(synchronize_session=False)
            )
            done += int(result.rowcount)  # type: ignore[attr-defined]
        return done

    def log_kek_rotation(
        self,
        session: Session,
        ctx: Context,
        *,
        from_kek: str,
        to_kek: str,
        rewrapped: int,
        reason: str,
    ) -> None:
        """Record and audit a KEK rotation once its rewrap pass finished."""
        self._log_rotation(
            session,
            ctx,
            kind="kek",
            reason=reason,
            count=rewrapped,
            from_kek=from_kek,
            to_kek=to_kek,
        )
        audit_log.append(
            session,
            [
                ctx.event(
                    "key.rotate",
                    "rotate",
                    resource={"keys": "kek"},
                    details={
                        "kind": "kek",
                        "from_kek": from_kek,
                        "to_kek": to_kek,
                        "keys_rewrapped": rewrapped,
                        "reason": reason[:200],
                    },
                )
            ],
        )

    def count_under_kek(self, session: Session, kek_id: str) -> int:
        """How many live DEKs are still wrapped by ``kek_id`` (must be 0 before retiring it)."""
        return int(
            session.scalar(
                select(func.count())
                .select_from(DataKey)
                .where(DataKey.kek_id == kek_id, DataKey.state != DESTROYED)
            )
            or 0
        )

    def samples_per_kek(self, session: Session) -> list[DataKey]:
        """One live DEK per KEK version, to check that the KEKs open them."""
        newest = (
            select(DataKey.kek_id, func.max(DataKey.id).label("id"))
            .where(DataKey.state != DESTROYED)
            .group_by(DataKey.kek_id)
            .subquery()
        )
        return list(session.scalars(select(DataKey).join(newest, DataKey.id == newest.c.id)))

    def kek_usage(self, session: Session) -> dict[str, int]:
        """Live DEKs per KEK id."""
        rows = session.execute(
            select(DataKey.kek_id, func.count())
            .where(DataKey.state != DESTROYED)
            .group_by(DataKey.kek_id)
        )
        return {str(kek): int(n) for kek, n in rows}

    def list(
        self,
        session: Session,
        *,
        subject_ref: str | None = None,
        state: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Sequence[DataKey]:
        query = select(DataKey).order_by(DataKey.created_at.desc(), DataKey.id)
        if subject_ref is not None:
            query = query.where(DataKey.subject_ref == subject_ref)
        if state is not None:
            query = query.where(DataKey.state == state)
        return list(session.scalars(query.limit(limit).offset(offset)))

    def rotations(self, session: Session, *, limit: int = 100) -> Sequence[KeyRotation]:
        return list(
            session.scalars(select(KeyRotation).order_by(KeyRotation.id.desc()).limit(limit))
        )

    def _log_rotation(
        self,
        session: Session,
        ctx: Context,
        *,
        kind: str,
        reason: str,
        count: int,
        from_kek: str | None = None,
        to_kek: str | None = None,
    ) -> None:
        session.add(
            KeyRotation(
                kind=kind,
                rotated_at=utcnow(),
                rotated_by=ctx.name[:64],
                reason=reason[:200],
                from_kek=from_kek,
                to_kek=to_kek,
                keys_affected=count,
            )
        )
        session.flush()


data_keys = DataKeyService()
