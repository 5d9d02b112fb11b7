"""Stored records: listing (metadata), reading in clear with a purpose, erasure, retention purge.

Every operation here is audited in the caller's transaction. None of them ever puts a payload,
a key or a subject id in clear into an audit entry, a log line or an error message: subjects
appear only as their blind index (``subject_ref``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from governance.audit import log as audit_log
from governance.audit.models import AuditEntry
from governance.db.base import utcnow
from governance.identity.models import Principal
from governance.kit.context import Context
from governance.records.errors import (
    AmbiguousSubject,
    InvalidSubject,
    RecordErased,
    RecordNotFound,
    UnknownScope,
)
from governance.records.models import (
    SCRUB_DONE,
    SCRUB_PENDING,
    ErasureReceipt,
    ErasureScrub,
    Record,
)
from governance.records.retention import RetentionPolicy
from governance.records.subjects import SubjectScopes, client_scope, shared_scope
from governance.vault.blind_index import digest, subject_index
from governance.vault.errors import DecryptionError, KeyDestroyed
from governance.vault.keys import UNSCOPED, data_keys
from governance.vault.models import DESTROYED, DataKey
from governance.vault.providers import KeyProvider, ServiceKeyProvider
from governance.vault.record_format import SealedRecord, open_sealed

__all__ = [
    "DecryptedRecord",
    "PurgeResult",
    "RecordKeys",
    "RecordService",
    "ServedPrediction",
    "ServedRow",
    "records",
]

# What opens a record's data key; other domains name it through records, not the vault.
RecordKeys = KeyProvider


@dataclass(frozen=True)
class DecryptedRecord:
    record: Record
    key_state: str
    request: dict[str, Any]
    response: dict[str, Any]


@dataclass(frozen=True)
class ServedPrediction:
    """A stored prediction's metadata as another domain may see it: no payload, no subject."""

    record_id: str
    model: str
    model_version: str
    created_at: datetime
    row_count: int
    dek_id: str


@dataclass(frozen=True)
class ServedRow:
    """One row of a served prediction in clear: the input record and the label served."""

    input: Mapping[str, Any]
    label: str


@dataclass(frozen=True)
class PurgeResult:
    deleted: dict[str, int]
    cutoffs: dict[str, datetime | None]
    dry_run: bool
    audit_seq: int

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


class RecordService:
    """Stateless; one instance per module. Never commits: the caller owns the transaction."""

    def list(
        self,
        session: Session,
        *,
        model: str | None = None,
        subject_ref: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[tuple[Record, str]]:
        """Records' metadata, newest first, with the state of each one's key."""
        query = (
            select(Record, DataKey.state)
            .join(DataKey, DataKey.id == Record.dek_id)
            .order_by(Record.created_at.desc(), Record.id)
        )
        if model is not None:
            query = query.where(Record.model == model)
        if subject_ref is not None:
            query = query.where(Record.subject_ref == subject_ref)
        return [(rec, str(st)) for rec, st in session.execute(query.limit(limit).offset(offset))]

    def get(self, session: Session, record_id: str) -> Record:
        row = session.get(Record, record_id)
        if row is None:
            raise RecordNotFound(f"record {record_id[:64]!r} does not exist (or was purged)")
        return row

    def key_state(self, session: Session, row: Record) -> str:
        """The state of a record's data key (``destroyed``: the record was erased)."""
        key_row = data_keys.get(session, row.dek_id)
        return DESTROYED if key_row is None else key_row.state

    def served(
        self, session: Session, *, request_id: str, principal: str
    ) -> ServedPrediction | None:
        """The stored prediction ``principal`` made under ``request_id``, if any.

        Someone else's request id gives ``None``, exactly like an unknown one.
        """
        row = session.scalar(
            select(Record).where(Record.request_id == request_id).order_by(Record.id).limit(1)
        )
        if row is None or row.principal != principal[:64]:
            return None
        return ServedPrediction(
            record_id=row.id,
            model=row.model,
            model_version=row.model_version,
            created_at=row.created_at,
            row_count=row.row_count,
            dek_id=row.dek_id,
        )

    def served_row_ref(self, digest_key: bytes, request_id: str, row: int) -> str:
        """A keyed one-way reference to one row of a served prediction: it tells a second use
        of the row apart without keeping the request id."""
        return digest(digest_key, f"fairness-outcome\x00{request_id}\x00{row}".encode())

    def served_rows(
        self, session: Session, keys: KeyProvider, served: ServedPrediction
    ) -> Sequence[ServedRow] | None:
        """The rows of a stored prediction in clear, unaudited (the caller audits its use).

        ``None`` when the record is gone, has no data key, or does not decrypt.

        Raises:
            KeyDestroyed: the prediction's subject was erased (410).
        """
        row = session.get(Record, served.record_id)
        key_row = None if row is None else data_keys.get(session, row.dek_id)
        if row is None or key_row is None:
            return None
        key = data_keys.unwrap(keys, key_row)
        try:
            plaintext = open_sealed(key, SealedRecord(blob=row.blob), row.sealed_fields())
        except DecryptionError:
            return None
        doc = json.loads(plaintext)
        inputs: Sequence[Any] = doc.get("request", {}).get("records") or []
        predictions: Sequence[Any] = doc.get("response", {}).get("predictions") or []
        return [
            ServedRow(
                input=given if isinstance(given, Mapping) else {},
                label=str(made.get("label") if isinstance(made, Mapping) else None),
            )
            for given, made in zip(inputs, predictions, strict=False)
        ]

    def decrypt(
        self,
        session: Session,
        ctx: Context,
        keys: ServiceKeyProvider,
        *,
        record_id: str,
        purpose: str,
    ) -> DecryptedRecord:
        """Open a stored record for a stated purpose; the access is audited first.

        Every field the audit entry repeats is checked first: the key's wrap binds its subject
        and version, the record's associated data binds its model, version, principal and
        request id, the key must be the record's subject's, and the log's entry at the
        record's audit sequence must carry the record's request id.

        Raises:
            RecordNotFound: no such record.
            RecordErased: its key was destroyed by an erasure.
            DecryptionError: the record, its key or its audit entry were altered, relabelled
                or moved (422, one fixed message that repeats no stored value).
            KeyProviderError: the KEK is unavailable.
        """
        row = self.get(session, record_id)
        key_row = data_keys.get(session, row.dek_id)
        if key_row is None or key_row.state == DESTROYED:
            raise RecordErased(f"record {row.id} was erased: its data key was destroyed")
        if key_row.subject_ref != row.subject_ref or key_row.version != row.dek_version:
            raise DecryptionError()
        try:
            dek = data_keys.unwrap(keys, key_row)
            plaintext = open_sealed(dek, SealedRecord(blob=bytes(row.blob)), row.sealed_fields())
        except KeyDestroyed:
            raise RecordErased(f"record {row.id} was erased: its data key was destroyed") from None
        entry = None if row.audit_seq is None else session.get(AuditEntry, row.audit_seq)
        if entry is None or entry.request_id != row.request_id:
            raise DecryptionError()
        doc = json.loads(plaintext)
        audit_log.append(
            session,
            [
                ctx.event(
                    "records.decrypt",
                    "decrypt",
                    resource={"record": row.id, "model": row.model},
                    model_version=row.model_version,
                    data_key_id=row.dek_id,
                    details={
                        "purpose": purpose,
                        "subject_ref": row.subject_ref,
                        "request_id": row.request_id,
                    },
                )
            ],
        )
        return DecryptedRecord(
            record=row, key_state=key_row.state, request=doc["request"], response=doc["response"]
        )

    def erase(
        self,
        session: Session,
        ctx: Context,
        keys: ServiceKeyProvider,
        *,
        subject_id: str,
        scopes: SubjectScopes | None = None,
        client: str | None = None,
        namespace: str | None = None,
        every_scope: bool = False,
        scrub_status: str = SCRUB_PENDING,
        kek_retire_by: datetime | None = None,
    ) -> ErasureReceipt:
        """Erase a data subject (GDPR Art. 17) by destroying every one of its data keys.

        Subject ids are scoped per client principal (:mod:`governance.records.subjects`), so
        the erasure names whose subject it is: ``client`` (that client's scope, and the
        shared namespace it is in), ``namespace`` (a shared namespace), or ``every_scope``.
        Naming none is enough while at most one scope holds keys for the id; otherwise the
        erasure is refused as ambiguous. Keys made before subjects were scoped (one key per
        subject id for every client) are erased by every erasure of that id.

        Every key that one of the subject's records names is destroyed, whatever subject the
        key's row names (a relabelled row hides nothing), as is every key whose row names the
        subject. Its records stay as unreadable ciphertext; the audit log is untouched and
        still verifies. A receipt is stored and audited, with a scrub row that follows the
        keys' bytes out of the database files (:mod:`governance.records.scrubs`). Erasing a
        subject twice, or one never seen, gives a receipt with no keys.

        Args:
            scrub_status: how the scrub starts (``pending`` on SQLite, ``residual`` on
                PostgreSQL: :func:`~governance.records.scrubs.scrub_status_for`).
            kek_retire_by: when the current KEK is due to be retired (the schedule).

        Returns:
            The receipt (key ids destroyed, when, by whom, records affected).

        Raises:
            InvalidSubject: the id is empty or not valid text, or more than one of
                ``client``, ``namespace`` and ``every_scope`` was given.
            UnknownScope: ``client`` is no principal, or ``namespace`` is not configured.
            AmbiguousSubject: none was given and several scopes hold the id.
        """
        scopes = scopes or SubjectScopes()
        if sum((client is not None, namespace is not None, every_scope)) > 1:
            raise InvalidSubject("name at most one of client, namespace and all_clients")
        blind_key = keys.blind_index_key()
        try:
            known = data_keys.subject_refs(session, blind_key, subject_id)
        except (TypeError, ValueError):
            raise InvalidSubject("a subject id must be non-empty Unicode text") from None
        chosen = [UNSCOPED]
        if client is not None:
            exists = session.scalar(select(Principal.id).where(Principal.name == client))
            if exists is None:
                raise UnknownScope(f"no client principal is named {client[:64]!r}")
            chosen += dict.fromkeys([scopes.scope_of(client), client_scope(client)])
        elif namespace is not None:
            if namespace not in scopes.namespaces:
                raise UnknownScope(
                    f"no shared subject namespace is named {namespace[:64]!r} "
                    "(policies/subjects.yaml)"
                )
            chosen.append(shared_scope(namespace))
        else:
            live = self._live_refs(session, known.values())
            holding = sorted(
                scope for scope, ref in known.items() if scope != UNSCOPED and ref in live
            )
            if len(holding) > 1 and not every_scope:
                raise AmbiguousSubject(
                    f"{len(holding)} clients' scopes hold this subject id: name one "
                    "(?client= or ?namespace=), or erase it in every scope (?all_clients=true)",
                    extra={"scopes": holding},
                )
            chosen += sorted(known) if every_scope else holding
        chosen = list(dict.fromkeys(chosen))
        refs = {
            scope: known.get(scope) or subject_index(blind_key, scope, subject_id)
            for scope in chosen
        }
        # The receipt is filed under the scope the erasure was for (the unscoped one alone if
        # no scope held the id).
        ref = refs[chosen[1]] if len(chosen) > 1 else refs[UNSCOPED]
        named = session.scalars(
            select(Record.dek_id).where(Record.subject_ref.in_(list(refs.values()))).distinct()
        )
        destroyed = data_keys.destroy_subjects(
            session, subject_refs=list(refs.values()), dek_ids=list(named), by=ctx.name[:64]
        )
        dek_ids = [row.id for row in destroyed]
        affected = 0
        if dek_ids:
            affected = int(
                session.scalar(
                    select(func.count()).select_from(Record).where(Record.dek_id.in_(dek_ids))
                )
                or 0
            )
        receipt_id = f"era_{uuid.uuid4().hex}"
        now = utcnow()
        (seq,) = audit_log.append(
            session,
            [
                ctx.event(
                    "subject.erase",
                    "erase",
                    resource={"subject_ref": ref},
                    details={
                        "receipt": receipt_id,
                        "dek_ids": dek_ids,
                        "records_affected": affected,
                        "scopes": {scope: refs[scope] for scope in chosen},
                    },
                )
            ],
        )
        receipt = ErasureReceipt(
            id=receipt_id,
            subject_ref=ref,
            erased_at=now,
            erased_by=ctx.name[:64],
            dek_ids=json.dumps(dek_ids),
            records_affected=affected,
            audit_seq=seq,
        )
        session.add(receipt)
        session.flush()
        session.add(
            ErasureScrub(
                receipt_id=receipt_id,
                status=scrub_status if dek_ids else SCRUB_DONE,
                attempts=0,
                removed_at=None if dek_ids else now,
                kek_retire_by=kek_retire_by,
            )
        )
        session.flush()
        return receipt

    def _live_refs(self, session: Session, subject_refs: Collection[str]) -> set[str]:
        """Which subject references hold a key not destroyed, by the keys' rows or by the
        records that name a key."""
        refs = list(subject_refs)
        by_records = session.scalars(
            select(Record.subject_ref)
            .join(DataKey, DataKey.id == Record.dek_id)
            .where(Record.subject_ref.in_(refs), DataKey.state != DESTROYED)
            .distinct()
        )
        return data_keys.live_refs(session, refs) | set(by_records)

    def receipt(self, session: Session, receipt_id: str) -> ErasureReceipt:
        row = session.get(ErasureReceipt, receipt_id)
        if row is None:
            raise RecordNotFound(f"no erasure receipt {receipt_id[:64]!r}")
        return row

    def scrub_of(self, session: Session, receipt_id: str) -> ErasureScrub | None:
        return session.get(ErasureScrub, receipt_id)

    def receipts(
        self, session: Session, *, subject_ref: str | None = None, limit: int = 100
    ) -> Sequence[ErasureReceipt]:
        query = select(ErasureReceipt).order_by(ErasureReceipt.erased_at.desc())
        if subject_ref is not None:
            query = query.where(ErasureReceipt.subject_ref == subject_ref)
        return list(session.scalars(query.limit(limit)))

    def purge(
        self,
        session: Session,
        ctx: Context,
        policy: RetentionPolicy,
        *,
        now: datetime | None = None,
        dry_run: bool = False,
    ) -> PurgeResult:
        """Delete records older than their retention period; the purge is audited.

        Audit entries are never deleted here: they outlive the records (``audit.min_days``).

        Args:
            session: the caller's transaction.
            ctx: who purges.
            policy: the retention policy.
            now: the reference time (tests); the current time by default.
            dry_run: count what would be deleted, delete nothing (still audited).
        """
        at = now or utcnow()
        deleted: dict[str, int] = {}
        cutoffs: dict[str, datetime | None] = {}
        for model in sorted(session.scalars(select(Record.model).distinct())):
            cutoff = policy.cutoff(model, now=at)
            cutoffs[model] = cutoff
            if cutoff is None:
                continue
            expired = (Record.model == model) & (Record.created_at < cutoff)
            if dry_run:
                count = session.scalar(select(func.count()).select_from(Record).where(expired))
            else:
                count = session.execute(
                    delete(Record).where(expired).execution_options(synchronize_session=False)
                ).rowcount  # type: ignore[attr-defined]
            if count:
                deleted[model] = int(count)
        (seq,) = audit_log.append(
            session,
            [
                ctx.event(
                    "records.purge",
                    "purge",
                    resource={"records": "expired"},
                    details={
                        "deleted": deleted,
                        "total": sum(deleted.values()),
                        "dry_run": dry_run,
                        "cutoffs": {m: c.isoformat() if c else None for m, c in cutoffs.items()},
                        "retention": policy.as_dict(),
                    },
                )
            ],
        )
        return PurgeResult(deleted=deleted, cutoffs=cutoffs, dry_run=dry_run, audit_seq=seq)


records = RecordService()
