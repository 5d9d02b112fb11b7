"""Routes of the auditor API under ``/v1/audit``: browse, prove, verify, export.

Reading needs ``api:audit read``; verifying the whole log ``verify``; exporting ``export``.
Every call is itself audited by the middleware (an ``api.call`` entry), exports also as
``audit.export``.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from governance.api.dependencies import JournalDep, SettingsDep, SignerDep
from governance.api.deps import Authorize, Caller
from governance.audit.checkpoints import Checkpointer
from governance.audit.errors import AuditVerificationError, InvalidProofRequest
from governance.audit.export import export_bundle, seq_range
from governance.audit.repository import EntryFilter, snapshot_session
from governance.audit.schemas import (
    AuditEntryOut,
    CheckpointOut,
    ConsistencyOut,
    EntryPage,
    EntryProofOut,
    ExportRequest,
    InclusionOut,
    PublicKeyOut,
    VerifyOut,
)
from governance.audit.service import MAX_PAGE, audit
from governance.audit.signing import public_vkey
from governance.audit.verify import verify_log
from governance.db.base import DbBigInt, UtcDatetime
from governance.errors import Unprocessable
from governance.kit.problems import responses
from governance.kit.transaction import SessionsDep, TransactionDep

router = APIRouter(prefix="/v1/audit", tags=["audit"])

CanReadAudit = Annotated[Caller, Depends(Authorize("api:audit", "read"))]
CanVerifyAudit = Annotated[Caller, Depends(Authorize("api:audit", "verify"))]
CanExportAudit = Annotated[Caller, Depends(Authorize("api:audit", "export"))]

# An API export is built in memory; larger ranges go through `warden audit export`.
MAX_API_EXPORT = 100_000


def _vkey(checkpointer: Checkpointer) -> tuple[str, str]:
    return checkpointer.origin, public_vkey(checkpointer.origin, checkpointer.key)


@router.get("/entries", operation_id="list_audit_entries", responses=responses(422))
def list_entries(
    sessions: SessionsDep,
    caller: CanReadAudit,
    since: Annotated[UtcDatetime | None, Query(description="inclusive; UTC if no offset")] = None,
    until: Annotated[UtcDatetime | None, Query(description="exclusive; UTC if no offset")] = None,
    actor: str | None = None,
    resource: Annotated[str | None, Query(description="substring of `k=v,k=v`")] = None,
    decision: str | None = None,
    event_type: str | None = None,
    request_id: str | None = None,
    order: Annotated[
        Literal["asc", "desc"], Query(description="asc: oldest first; desc: newest first")
    ] = "asc",
    after: Annotated[
        DbBigInt | None, Query(ge=-1, description="previous page's next_after (order asc)")
    ] = None,
    before: Annotated[
        DbBigInt | None, Query(ge=0, description="previous page's next_after (order desc)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> EntryPage:
    """List entries oldest first (or newest first), filtered, with keyset pagination on seq."""
    newest_first = order == "desc"
    if (after is not None and newest_first) or (before is not None and not newest_first):
        raise Unprocessable(
            "`after` pages oldest first (order asc), `before` newest first (order desc)"
        )
    flt = EntryFilter(
        since=since,
        until=until,
        actor=actor,
        resource=resource,
        decision=decision,
        event_type=event_type,
        request_id=request_id,
    )
    with sessions.begin() as session:
        page = audit.list_entries(
            session, flt, after=after, before=before, newest_first=newest_first, limit=limit
        )
        return EntryPage(
            entries=[AuditEntryOut.of(row) for row in page.entries], next_after=page.next_after
        )


@router.get("/entries/{seq}", operation_id="get_audit_entry", responses=responses(404))
def get_entry(seq: DbBigInt, caller: CanReadAudit, session: TransactionDep) -> EntryProofOut:
    """One entry, its canonical bytes and its inclusion proof against the latest checkpoint."""
    found = audit.entry(session, seq)
    inclusion = None
    if found.checkpoint is not None and found.proof is not None:
        inclusion = InclusionOut(
            tree_size=found.checkpoint.tree_size,
            proof=[node.hex() for node in found.proof],
            checkpoint=CheckpointOut.of(found.checkpoint),
        )
    return EntryProofOut(
        entry=AuditEntryOut.of(found.entry),
        canonical=found.entry.canonical,
        leaf_hash=found.entry.leaf_hash.hex(),
        inclusion=inclusion,
    )


@router.get("/checkpoints/latest", operation_id="get_latest_checkpoint", responses=responses(404))
def latest_checkpoint(caller: CanReadAudit, session: TransactionDep) -> CheckpointOut:
    """The most recent signed checkpoint (C2SP signed note)."""
    return CheckpointOut.of(audit.latest_checkpoint(session))


@router.get("/checkpoints", responses=responses(422))
def list_checkpoints(
    caller: CanReadAudit,
    session: TransactionDep,
    after: Annotated[
        DbBigInt | None, Query(ge=0, description="tree size of the previous page's last")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> list[CheckpointOut]:
    """Signed checkpoints, smallest tree first."""
    return [CheckpointOut.of(row) for row in audit.checkpoints(session, after=after, limit=limit)]


@router.get("/consistency", operation_id="get_consistency_proof", responses=responses(404, 422))
def consistency(
    caller: CanReadAudit,
    session: TransactionDep,
    first: Annotated[DbBigInt, Query(ge=0, description="older checkpoint's tree size")],
    second: Annotated[
        DbBigInt | None, Query(ge=0, description="newer one (default: latest)")
    ] = None,
) -> ConsistencyOut:
    """The consistency proof between two signed checkpoints."""
    found = audit.consistency(session, first=first, second=second)
    return ConsistencyOut(
        size1=found.older.tree_size,
        size2=found.newer.tree_size,
        root1=found.older.root_hash.hex(),
        root2=found.newer.root_hash.hex(),
        proof=[node.hex() for node in found.proof],
        checkpoint1=CheckpointOut.of(found.older),
        checkpoint2=CheckpointOut.of(found.newer),
    )


@router.get("/public-key", operation_id="get_audit_public_key", responses=responses(503))
def public_key(signer: SignerDep, caller: CanReadAudit) -> PublicKeyOut:
    """The log's verifier key: what auditors check checkpoints and bundles against."""
    origin, vkey = _vkey(signer)
    return PublicKeyOut(origin=origin, vkey=vkey)


@router.post("/verify", operation_id="verify_audit_log", responses=responses(503))
def verify(settings: SettingsDep, signer: SignerDep, caller: CanVerifyAudit) -> VerifyOut:
    """Verify the whole live log: every leaf, node and checkpoint signature."""
    _, vkey = _vkey(signer)
    with snapshot_session(settings.resolved_database_url) as session:
        try:
            return VerifyOut.of(verify_log(session, vkey))
        except AuditVerificationError as exc:
            return VerifyOut(
                ok=False,
                error=exc.message,
                first_bad_seq=exc.first_bad_seq,
                checkpoint_size=exc.checkpoint_size,
            )


@router.post(
    "/export",
    operation_id="export_audit_log",
    responses={
        **responses(404, 409, 422),
        200: {
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
            "description": "the bundle as a zip",
        },
    },
    response_class=Response,
)
def export(
    body: ExportRequest,
    settings: SettingsDep,
    journal: JournalDep,
    signer: SignerDep,
    caller: CanExportAudit,
) -> Response:
    """Export a range as a zip of the offline-verifiable bundle (docs/audit-bundle.md)."""
    _, vkey = _vkey(signer)
    url = settings.resolved_database_url
    with snapshot_session(url) as session, tempfile.TemporaryDirectory() as tmp:
        first, last = seq_range(
            session,
            from_seq=body.from_seq,
            to_seq=body.to_seq,
            since=body.since,
            until=body.until,
        )
        if last - first + 1 > MAX_API_EXPORT:
            raise InvalidProofRequest(
                f"at most {MAX_API_EXPORT} entries per API export; use `warden audit export`"
            )
        bundle = export_bundle(
            session, from_seq=first, to_seq=last, out_dir=Path(tmp) / "bundle", vkey=vkey
        )
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(bundle.rglob("*")):
                if path.is_file():
                    archive.write(path, f"audit-bundle/{path.relative_to(bundle).as_posix()}")
    event = caller.ctx.event(
        "audit.export",
        "export",
        resource={"from_seq": first, "to_seq": last},
        details={"via": "api"},
    )
    # The export is answered only once its own entry is durable (fail closed).
    journal.append_sync([event])
    name = f"audit-bundle-{first}-{last}.zip"
    return Response(
        buffer.getvalue(),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
