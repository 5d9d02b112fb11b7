"""Routes of the reports domain: auditors and compliance officers generate and download."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session, sessionmaker

from governance.api.dependencies import CheckpointerDep, JobsDep, SettingsDep
from governance.api.deps import Authorize, Caller
from governance.audit.checkpoints import Checkpointer
from governance.audit.log import tree_size
from governance.audit.repository import snapshot_session
from governance.audit.signing import load_signing_key
from governance.config import Settings
from governance.kit.problems import responses
from governance.kit.transaction import SessionsDep
from governance.reports.schemas import ReportCreate, ReportCreated, ReportOut
from governance.reports.service import MEDIA_TYPES, StoredReport, reports

router = APIRouter(prefix="/v1/reports", tags=["reports"])

CanWriteReports = Annotated[Caller, Depends(Authorize("api:reports", "write"))]
CanReadReports = Annotated[Caller, Depends(Authorize("api:reports", "read"))]


def _out(stored: StoredReport) -> ReportOut:
    return ReportOut(
        id=stored.id,
        period_from=stored.period_from,
        period_to=stored.period_to,
        model=stored.model,
        generated_at=stored.generated_at,
        generated_by=stored.generated_by,
        files=stored.files,
    )


@dataclass(frozen=True)
class Reporting:
    """What generating a report needs from the running server."""

    sessions: sessionmaker[Session]
    settings: Settings
    checkpointer: Checkpointer | None


def generate_signed(deps: Reporting, caller: Caller, body: ReportCreate) -> ReportCreated:
    """Sign a checkpoint, build the report on a snapshot, record its export (blocking)."""
    settings = deps.settings
    checkpointer = deps.checkpointer
    key = (
        checkpointer.key
        if checkpointer is not None
        else load_signing_key(settings.resolved_signing_key_file)
    )
    anchor_size = None
    if checkpointer is not None:
        # Every report is anchored at a head signed now (refused if the log does not extend
        # the signer's last checkpoint); its range ends at that head.
        with deps.sessions.begin() as session:
            anchor_size = tree_size(session)
            checkpointer.checkpoint(session, force=True)
    # The long read runs on a snapshot, so requests keep flowing while the log is verified.
    with snapshot_session(settings.resolved_database_url) as snapshot:
        generated = reports.generate(
            snapshot,
            settings,
            caller.ctx,
            signing_key=key,
            start=body.period_from,
            end=body.period_to,
            model=body.model,
            anchor_size=anchor_size,
            frameworks=body.frameworks,
        )
    with deps.sessions.begin() as session:
        seq = reports.record_export(session, caller.ctx, generated)
    stored = reports.get(settings, generated.report.meta.id)
    return ReportCreated(
        **_out(stored).model_dump(),
        audit_seq=seq,
        manifest_sha256=generated.manifest_sha256,
        log_verified=generated.report.meta.audit_log.verification.verified,
    )


@router.post("", status_code=201, responses=responses(400, 422, 503))
async def generate_report(
    body: ReportCreate,
    jobs: JobsDep,
    sessions: SessionsDep,
    settings: SettingsDep,
    checkpointer: CheckpointerDep,
    caller: CanWriteReports,
) -> ReportCreated:
    """Generate a signed compliance report over a period (JSON, HTML, PDF and manifest)."""
    # The long read is on a snapshot and the record a short transaction; the whole generation
    # waits its turn in the heavy-job queue.
    deps = Reporting(sessions, settings, checkpointer)
    return await jobs.run("report", generate_signed, deps, caller, body)


@router.get("", responses=responses())
def list_reports(settings: SettingsDep, caller: CanReadReports) -> list[ReportOut]:
    """List generated reports, newest first."""
    return [_out(r) for r in reports.list(settings)]


@router.get("/{report_id}", responses=responses(404))
def get_report(report_id: str, settings: SettingsDep, caller: CanReadReports) -> ReportOut:
    """One report's period, author and files."""
    return _out(reports.get(settings, report_id))


@router.get("/{report_id}/files/{name}", responses=responses(404), response_class=FileResponse)
def download_report_file(
    report_id: str, name: str, settings: SettingsDep, caller: CanReadReports
) -> FileResponse:
    """Download one file of a report (report.json, report.html, report.pdf, manifest.json)."""
    path = reports.file(settings, report_id, name)
    return FileResponse(path, media_type=MEDIA_TYPES[name], filename=f"{report_id}-{name}")
