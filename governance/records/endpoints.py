"""Routes for stored records, their decryption with a purpose, erasure and retention purge."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.convertors import StringConvertor, register_url_convertor

from governance.api.dependencies import KeysDep, RecordsDep, SettingsDep
from governance.api.deps import Authorize, Caller
from governance.db.base import DbBigInt
from governance.kit.problems import responses
from governance.kit.request_facts import facts_of
from governance.kit.transaction import EngineDep, ReadSessionsDep, SessionsDep, TransactionDep
from governance.records.models import Record
from governance.records.receipts import receipt_out
from governance.records.recorder import RECORD_ID_PATTERN
from governance.records.retention import load_retention
from governance.records.schemas import (
    DecryptedRecordOut,
    DecryptRequest,
    ErasureReceiptOut,
    PurgeOut,
    PurgeRequest,
    RecordOut,
)
from governance.records.scrubs import scrub_status_for
from governance.records.service import records

router = APIRouter(prefix="/v1", tags=["records"])


class RecordIdConvertor(StringConvertor):
    """A path segment that is a record id, and nothing else.

    With a plain ``{record_id}``, ``GET /v1/records/purge`` was routed to the record lookup
    (and answered 404 for a record named "purge"); the path is the purge route's, so a GET
    there is a 405 that names POST. A segment that cannot be a record id is a 404 from the
    router, as any other path Warden does not serve.
    """

    regex = RECORD_ID_PATTERN


register_url_convertor("record_id", RecordIdConvertor())
RecordId = Annotated[str, Path(pattern=f"^{RECORD_ID_PATTERN}$")]

CanListRecords = Annotated[Caller, Depends(Authorize("api:records", "list"))]
CanDecryptRecords = Annotated[Caller, Depends(Authorize("api:records", "decrypt"))]
CanPurgeRecords = Annotated[Caller, Depends(Authorize("api:records", "purge"))]
CanEraseSubjects = Annotated[Caller, Depends(Authorize("api:subjects", "erase"))]


def record_out(row: Record, key_state: str) -> RecordOut:
    return RecordOut(
        id=row.id,
        request_id=row.request_id,
        created_at=row.created_at,
        principal=row.principal,
        model=row.model,
        model_version=row.model_version,
        subject_ref=row.subject_ref,
        dek_id=row.dek_id,
        dek_version=row.dek_version,
        format_version=row.format_version,
        row_count=row.row_count,
        audit_seq=row.audit_seq,
        key_state=key_state,
    )


@router.get("/records", responses=responses(422))
def list_records(
    caller: CanListRecords,
    session: TransactionDep,
    model: str | None = None,
    subject_ref: str | None = Query(default=None, description="A subject's blind index."),
    limit: int = Query(default=100, ge=1, le=1000),
    offset: Annotated[DbBigInt, Query(ge=0)] = 0,
) -> list[RecordOut]:
    """List stored records, newest first: metadata only, never content."""
    return [
        record_out(r, s)
        for r, s in records.list(
            session, model=model, subject_ref=subject_ref, limit=limit, offset=offset
        )
    ]


@router.get("/records/{record_id:record_id}", responses=responses(404))
def get_record(record_id: RecordId, caller: CanListRecords, session: TransactionDep) -> RecordOut:
    """One stored record's metadata."""
    row = records.get(session, record_id)
    return record_out(row, records.key_state(session, row))


@router.post("/records/{record_id:record_id}/decrypt", responses=responses(404, 410, 422, 503))
def decrypt_record(
    record_id: RecordId,
    body: DecryptRequest,
    keys: KeysDep,
    caller: CanDecryptRecords,
    session: TransactionDep,
) -> DecryptedRecordOut:
    """Read a record in clear for a stated purpose (a separate right; the access is audited)."""
    opened = records.decrypt(session, caller.ctx, keys, record_id=record_id, purpose=body.purpose)
    return DecryptedRecordOut(
        record=record_out(opened.record, opened.key_state),
        purpose=body.purpose,
        request=opened.request,
        response=opened.response,
    )


@router.post("/records/purge", responses=responses(503))
def purge_records(
    body: PurgeRequest, sessions: SessionsDep, settings: SettingsDep, caller: CanPurgeRecords
) -> PurgeOut:
    """Delete records past their retention period (policies/retention.yaml); audited."""
    policy = load_retention(settings.policies_dir)
    with sessions.begin() as session:
        result = records.purge(session, caller.ctx, policy, dry_run=body.dry_run)
    return PurgeOut(
        deleted=result.deleted,
        total=result.total,
        cutoffs=result.cutoffs,
        dry_run=result.dry_run,
        audit_seq=result.audit_seq,
        audit_min_days=policy.audit_min_days,
    )


@router.delete("/subjects/{subject_id}", responses=responses(400, 409, 422))
def erase_subject(
    subject_id: str,
    request: Request,
    sessions: SessionsDep,
    read_sessions: ReadSessionsDep,
    store: RecordsDep,
    engine: EngineDep,
    keys: KeysDep,
    caller: CanEraseSubjects,
    client: str | None = Query(
        default=None,
        min_length=1,
        max_length=64,
        description="The client principal whose subject this is (its scope, and the shared "
        "namespace it is in).",
    ),
    namespace: str | None = Query(
        default=None,
        min_length=1,
        max_length=64,
        description="A shared subject namespace (policies/subjects.yaml).",
    ),
    all_clients: Literal["true", "false"] = Query(
        default="false", description="Erase the subject id in every client's scope."
    ),
) -> ErasureReceiptOut:
    """Erase a data subject (GDPR Art. 17): destroy its data keys; returns the receipt.

    Subject ids are scoped per client: name the client (or shared namespace) when more than
    one holds this id, or erase it in all of them with all_clients=true (409 otherwise).
    """
    # The access entry must not carry the subject id in clear: name the route, not the path.
    facts = facts_of(request.scope)
    facts.resource = {
        "object": "api:subjects",
        "action": "erase",
        "path": "/v1/subjects/{subject_id}",
    }
    with sessions.begin() as session:
        receipt = records.erase(
            session,
            caller.ctx,
            keys,
            subject_id=subject_id,
            scopes=store.scopes,
            client=client,
            namespace=namespace,
            every_scope=all_clients == "true",
            scrub_status=scrub_status_for(engine),
            kek_retire_by=store.kek_schedule.retire_by(),
        )
        receipt_id, subject_ref, dek_ids = receipt.id, receipt.subject_ref, receipt.dek_ids
    facts.resource["subject_ref"] = subject_ref
    # One short try now (this route runs in a worker thread, never on the event loop); a
    # busy log is retried with backoff by the server's tick, and the receipt says so.
    if not store.scrubs.attempt():
        store.scrubs.note_pending()
    store.forget_keys(json.loads(dek_ids))
    with read_sessions() as session:
        stored = records.receipt(session, receipt_id)
        scrub = records.scrub_of(session, receipt_id)
        return receipt_out(stored, scrub, dialect=engine.dialect.name)


@router.get("/erasures", responses=responses())
def list_erasures(
    sessions: SessionsDep,
    engine: EngineDep,
    caller: CanListRecords,
    subject_ref: str | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[ErasureReceiptOut]:
    """Erasure receipts, newest first."""
    dialect = engine.dialect.name
    with sessions.begin() as session:
        return [
            receipt_out(r, records.scrub_of(session, r.id), dialect=dialect)
            for r in records.receipts(session, subject_ref=subject_ref, limit=limit)
        ]
