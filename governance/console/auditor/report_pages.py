"""Compliance reports in the console: generate one as a job with its progress, list them, open
one, download its files and verify its signed manifest.

Generating calls the API's own generation (``generate_signed``, ``api:reports write``) in the
same heavy-job queue; reading, downloading and verifying need ``api:reports read``, as
``GET /v1/reports`` does. Verification checks the folder against the log's own key, never the
key the manifest names.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import ValidationError

from governance.api.dependencies import CheckpointerDep, GateDep, JobsDep, SettingsDep
from governance.api.deps import Caller
from governance.audit.signing import public_vkey
from governance.console.auditor.report_jobs import ReportJob, report_jobs
from governance.console.guard import Page
from governance.console.render import render
from governance.errors import NotFound
from governance.kit.transaction import SessionsDep
from governance.reports.endpoints import Reporting
from governance.reports.errors import ReportVerificationError
from governance.reports.manifest import MANIFEST_FILE, verify_report_dir
from governance.reports.schemas import ReportCreate
from governance.reports.service import MEDIA_TYPES, reports

router = APIRouter(prefix="/console", include_in_schema=False)
REPORTS = "/console/reports"

ReadsReports = Annotated[Caller, Depends(Page("api:reports", "read"))]
WritesReports = Annotated[Caller, Depends(Page("api:reports", "write"))]

# What each file is, in the order the report page lists them.
FILE_LABELS = {
    "report.pdf": "PDF",
    "report.html": "HTML",
    "report.json": "JSON",
    MANIFEST_FILE: "Signed manifest",
}


class JobNotFound(NotFound):
    """No such generation on this server (jobs are forgotten at a restart)."""

    title = "No such report job"


def _form_defaults(now: datetime) -> dict[str, str]:
    end = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    start = (end - timedelta(days=30)).replace(hour=0, minute=0)
    return {"period_from": f"{start:%Y-%m-%dT%H:%M}", "period_to": f"{end:%Y-%m-%dT%H:%M}"}


def _list_page(
    request: Request,
    caller: Caller,
    gate: GateDep,
    settings: SettingsDep,
    *,
    form: dict[str, str],
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    may_generate = gate.policy.current.enforce(caller.name, "api:reports", "write").allowed
    context = {
        "reports": reports.list(settings),
        "form": form,
        "error": error,
        "may_generate": may_generate,
    }
    return render(
        request, "auditor/reports.html.j2", context, caller=caller, status_code=status_code
    )


@router.get("/reports")
def report_list(
    request: Request, caller: ReadsReports, gate: GateDep, settings: SettingsDep
) -> Response:
    form = {**_form_defaults(gate.clock()), "model": ""}
    return _list_page(request, caller, gate, settings, form=form)


def _utc(value: str) -> str:
    # The form's datetime-local has no offset: the page says its times are UTC.
    return value if value.endswith("Z") or "+" in value[10:] else f"{value}Z"


@router.post("/reports")
async def report_generate(
    request: Request,
    caller: WritesReports,
    gate: GateDep,
    jobs: JobsDep,
    sessions: SessionsDep,
    settings: SettingsDep,
    checkpointer: CheckpointerDep,
    period_from: Annotated[str, Form(max_length=40)],
    period_to: Annotated[str, Form(max_length=40)],
    model: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    form = {"period_from": period_from, "period_to": period_to, "model": model}
    try:
        body = ReportCreate.model_validate(
            {"from": _utc(period_from), "to": _utc(period_to), "model": model.strip() or None}
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = {"from": "From", "to": "To"}.get(str(first["loc"][0]), "Model")
        return _list_page(
            request,
            caller,
            gate,
            settings,
            form=form,
            error=f"{where}: {first['msg']}",
            status_code=422,
        )
    if body.period_from >= body.period_to:
        return _list_page(
            request,
            caller,
            gate,
            settings,
            form=form,
            error="the period must end after it starts",
            status_code=400,
        )
    deps = Reporting(sessions, settings, checkpointer)
    job = report_jobs.start(jobs, deps, caller, body, clock=gate.clock)
    return RedirectResponse(f"{REPORTS}/jobs/{job.id}", status_code=303)


def _job(job_id: str) -> ReportJob:
    job = report_jobs.get(job_id)
    if job is None:
        raise JobNotFound(f"no report job {job_id[:32]!r} on this server")
    return job


def _job_context(job: ReportJob, gate: GateDep, jobs: JobsDep) -> dict[str, Any]:
    since = job.running_since or job.started_at
    return {
        "job": job,
        "elapsed": int((gate.clock() - since).total_seconds()),
        "queue": jobs.state(),
    }


@router.get("/reports/jobs/{job_id}")
def report_job(
    request: Request, job_id: str, caller: ReadsReports, gate: GateDep, jobs: JobsDep
) -> Response:
    context = _job_context(_job(job_id), gate, jobs)
    return render(request, "auditor/job.html.j2", context, caller=caller)


@router.get("/reports/jobs/{job_id}/progress")
def report_job_progress(
    request: Request, job_id: str, caller: ReadsReports, gate: GateDep, jobs: JobsDep
) -> Response:
    job = report_jobs.get(job_id)
    # A job the server forgot (it restarted) stops the polling instead of failing each second.
    context = {"job": None} if job is None else _job_context(job, gate, jobs)
    return render(request, "auditor/job_progress.html.j2", context, caller=caller)


def _manifest(folder_files: dict[str, Any]) -> dict[str, str]:
    return {f["name"]: f["sha256"] for f in folder_files.get("files", [])}


@router.get("/reports/{report_id}")
def report_page(
    request: Request, report_id: str, caller: ReadsReports, settings: SettingsDep
) -> Response:
    stored = reports.get(settings, report_id)
    try:
        listed = _manifest(json.loads(reports.file(settings, report_id, MANIFEST_FILE).read_text()))
    except (OSError, ValueError, KeyError, TypeError, NotFound):
        listed = {}
    files = [
        {"name": name, "label": label, "sha256": listed.get(name)}
        for name, label in FILE_LABELS.items()
        if name in stored.files
    ]
    context = {"report": stored, "files": files, "check": None, "error": None}
    return render(request, "auditor/report.html.j2", context, caller=caller)


@router.get("/reports/{report_id}/verification")
def report_verification(
    request: Request,
    report_id: str,
    caller: ReadsReports,
    gate: GateDep,
    settings: SettingsDep,
    checkpointer: CheckpointerDep,
) -> Response:
    stored = reports.get(settings, report_id)
    check, error = None, None
    if checkpointer is None:
        error = "the log's signing key is not loaded on this server: nothing to verify against"
    else:
        vkey = public_vkey(checkpointer.origin, checkpointer.key)
        try:
            check = verify_report_dir(stored.folder, vkey)
        except ReportVerificationError as exc:
            error = exc.message
    context = {"report": stored, "check": check, "error": error, "checked_at": gate.clock()}
    return render(
        request,
        "auditor/verification.html.j2",
        context,
        caller=caller,
        status_code=200 if check is not None else 422,
    )


@router.get("/reports/{report_id}/files/{name}")
def report_file(
    report_id: str, name: str, caller: ReadsReports, settings: SettingsDep
) -> FileResponse:
    path = reports.file(settings, report_id, name)
    return FileResponse(path, media_type=MEDIA_TYPES[name], filename=f"{report_id}-{name}")
