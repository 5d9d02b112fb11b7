"""Building the report document from the database, the artifacts and the policy files."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from importlib import metadata
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from governance import __version__
from governance.audit import repository as audit_repository
from governance.audit.errors import AuditIntegrityError, AuditVerificationError
from governance.audit.export import consistency_between, previous_checkpoint
from governance.audit.log import tree_size
from governance.audit.models import AuditCheckpoint
from governance.audit.signing import public_vkey
from governance.audit.verify import verify_log
from governance.config import Settings
from governance.db.base import utcnow
from governance.registry.service import registry
from governance.reports import sections
from governance.reports.controls import control_matrix
from governance.reports.document import (
    AuditLogRange,
    Checkpoint,
    CheckpointChain,
    Deployment,
    Generator,
    LogVerification,
    Meta,
    Report,
    System,
)
from governance.reports.errors import InvalidPeriod
from governance.reports.usage import build_usage

GENERATOR = "warden"
# The audit event of a report's export; it names the checkpoint the report's chain ended at.
REPORT_EVENT = "report.export"


def new_report_id(now: datetime) -> str:
    """``rpt-<UTC time>-<random>``: sortable by creation and safe as a folder name."""
    return f"rpt-{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"


def check_period(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """Both bounds timezone-aware (converted to UTC) and ``start < end``.

    Raises:
        InvalidPeriod: a naive bound or an empty period.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidPeriod("period bounds must carry a time zone (use UTC, e.g. ...Z)")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if start >= end:
        raise InvalidPeriod("the period must end after it starts")
    return start, end


def _verification(session: Session, vkey: str) -> LogVerification:
    try:
        result = verify_log(session, vkey)
    except AuditVerificationError as exc:
        return LogVerification(
            verified=False,
            tree_size=tree_size(session),
            entries_checked=0,
            checkpoints_checked=0,
            latest_checkpoint=None,
            root_hash=None,
            seconds=0.0,
            error=exc.message,
            first_bad_seq=getattr(exc, "first_bad_seq", None),
        )
    return LogVerification(
        verified=True,
        tree_size=result.tree_size,
        entries_checked=result.entries_checked,
        checkpoints_checked=result.checkpoints_checked,
        latest_checkpoint=result.latest_checkpoint,
        root_hash=result.root.hex(),
        seconds=round(result.seconds, 3),
    )


def _audit_range(
    session: Session,
    settings: Settings,
    key: Ed25519PrivateKey,
    start: datetime,
    end: datetime,
    *,
    verify: bool,
) -> AuditLogRange:
    first, last = audit_repository.seq_range(session, start, end)
    vkey = public_vkey(settings.log_origin, key)
    size = tree_size(session)
    row = None
    if last is not None:
        row = audit_repository.first_checkpoint_covering(session, last)
    if row is None:
        row = audit_repository.latest_checkpoint(session)
    checkpoint = None if row is None else _checkpoint(row)
    verification = (
        _verification(session, vkey)
        if verify
        else LogVerification(
            verified=False,
            tree_size=size,
            entries_checked=0,
            checkpoints_checked=0,
            latest_checkpoint=None,
            root_hash=None,
            seconds=0.0,
            error="verification skipped",
        )
    )
    return AuditLogRange(
        origin=settings.log_origin,
        public_key=vkey,
        first_seq=first,
        last_seq=last,
        entries_in_period=0 if first is None or last is None else last - first + 1,
        tree_size_at_generation=size,
        checkpoint=checkpoint,
        checkpoint_covers_period=row is not None and (last is None or row.tree_size > last),
        chain=_chain(session),
        verification=verification,
    )


def _checkpoint(row: AuditCheckpoint) -> Checkpoint:
    return Checkpoint(
        tree_size=row.tree_size,
        root_hash=row.root_hash.hex(),
        created_at=row.created_at,
        note=row.note,
    )


def _chain(session: Session) -> CheckpointChain | None:
    """The consistency proof from the previous report's checkpoint to the newest one.

    Raises:
        AuditIntegrityError: the previous report's checkpoint is gone, or lies beyond the
            newest (the log was cut back).
    """
    latest = audit_repository.latest_checkpoint(session)
    if latest is None:
        return None
    previous = previous_checkpoint(session, REPORT_EVENT)
    if previous is not None and previous.tree_size > latest.tree_size:
        raise AuditIntegrityError(
            f"the previous report ended at tree size {previous.tree_size}, beyond the newest "
            f"checkpoint ({latest.tree_size})"
        )
    proof = (
        []
        if previous is None
        else consistency_between(session, previous.tree_size, latest.tree_size)
    )
    return CheckpointChain(
        previous=None if previous is None else _checkpoint(previous),
        latest=_checkpoint(latest),
        consistency_proof=[node.hex() for node in proof],
    )


def _purpose() -> str:
    try:
        return metadata.metadata(GENERATOR)["Summary"] or ""
    except metadata.PackageNotFoundError:
        return ""


def _system(session: Session, settings: Settings) -> System:
    dialect = session.get_bind().dialect.name
    database: Literal["sqlite", "postgresql", "other"] = (
        "sqlite" if dialect == "sqlite" else "postgresql" if dialect == "postgresql" else "other"
    )
    form = (
        "single node: one API process with an embedded SQLite (WAL) database"
        if database == "sqlite"
        else "stateless API replicas sharing a PostgreSQL database"
    )
    return System(
        name="Warden",
        purpose=_purpose(),
        version=__version__,
        deployment=Deployment(
            form=form,
            database=database,
            environment=settings.environment,
            device=settings.device,
            key_provider=settings.key_provider,
            serving_models=sorted(f"{r.name}:{r.version}" for r in registry.serving(session)),
        ),
    )


def build_report(
    session: Session,
    settings: Settings,
    *,
    signing_key: Ed25519PrivateKey,
    start: datetime,
    end: datetime,
    model: str | None = None,
    generated_by: str = "system",
    report_id: str | None = None,
    verify: bool = True,
) -> Report:
    """Gather every section of a report over ``[start, end)``.

    Args:
        session: a session on the database; only read. A long read: use a snapshot session.
        settings: where the policy files are, the log origin, the deployment facts.
        signing_key: the audit log's key (its public half is quoted; nothing is signed here).
        start: period start (inclusive, timezone-aware).
        end: period end (exclusive).
        model: restrict model-specific sections to this model.
        generated_by: who asked for the report.
        report_id: the id (a new one when None).
        verify: verify the whole live log (the meta section reports the result).

    Returns:
        The report document.

    Raises:
        InvalidPeriod: a naive or empty period.
    """
    start, end = check_period(start, end)
    now = utcnow()
    audit_log = _audit_range(session, settings, signing_key, start, end, verify=verify)
    inventory, model_privacy = sections.build_models(session, model=model)
    usage = build_usage(
        session,
        first_seq=audit_log.first_seq,
        last_seq=audit_log.last_seq,
        start=start,
        end=end,
        model=model,
    )
    report = Report.model_construct(
        meta=Meta(
            id=report_id or new_report_id(now),
            period_from=start,
            period_to=end,
            model=model,
            generated_at=now,
            generated_by=generated_by,
            generator=Generator(name=GENERATOR, version=__version__),
            audit_log=audit_log,
        ),
        system=_system(session, settings),
        models=inventory,
        privacy=sections.build_privacy(session, settings, model_privacy),
        fairness=sections.build_fairness(session, start=start, end=end, model=model),
        access_control=sections.build_access(session, start=start, end=end),
        usage=usage,
        data_protection=sections.build_data_protection(session, settings, start=start, end=end),
        logging=sections.build_logging(
            session,
            settings,
            first_seq=audit_log.first_seq,
            last_seq=audit_log.last_seq,
            verified=audit_log.verification.verified,
        ),
        controls=[],
    )
    report.controls = control_matrix(report)
    # Validate the assembled document once, so a report that breaks its schema never leaves.
    return Report.model_validate(report.model_dump())
