"""Building the report document from the database, the artifacts and the policy files."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from governance import __version__
from governance.audit import merkle
from governance.audit import repository as audit_repository
from governance.audit.checkpoints import fetch_nodes
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
from governance.reports.controls import RemovedTest, judge
from governance.reports.document import (
    AuditLogRange,
    Checkpoint,
    CheckpointChain,
    ControlStatus,
    Deployment,
    Finding,
    Generator,
    InclusionProof,
    LogVerification,
    Meta,
    Report,
    StatusCount,
    Summary,
    System,
)
from governance.reports.errors import InvalidPeriod
from governance.reports.frameworks import load_frameworks, map_frameworks
from governance.reports.organisation import load_organisation
from governance.reports.systems import build_systems
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
    anchor_size: int | None,
) -> AuditLogRange:
    first, last = audit_repository.seq_range(session, start, end)
    vkey = public_vkey(settings.log_origin, key)
    size = tree_size(session)
    anchor = _anchor(session, last, anchor_size)
    after = 0
    if anchor is not None and anchor_size is not None and last is not None:
        # Entries appended while the report was generated lie past the checkpoint signed for
        # it: the range ends at the anchor and the next report takes them.
        covered = anchor.tree_size - 1
        if last > covered and first is not None:
            after = last - max(covered, first - 1)
            first, last = (first, covered) if covered >= first else (None, None)
    covers = anchor is not None and (last is None or anchor.tree_size > last)
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
        entries_after_anchor=after,
        tree_size_at_generation=size,
        checkpoint=None if anchor is None else _checkpoint(anchor),
        checkpoint_covers_period=covers,
        inclusion_proof=_inclusion(session, last, anchor) if covers else None,
        chain=_chain(session, anchor),
        verification=verification,
    )


def _anchor(session: Session, last: int | None, anchor_size: int | None) -> AuditCheckpoint | None:
    """The checkpoint signed for this report (the smallest at or past ``anchor_size``), else
    the first covering the period's last entry, else the newest."""
    if anchor_size is not None and anchor_size > 0:
        row = audit_repository.first_checkpoint_covering(session, anchor_size - 1)
        if row is not None:
            return row
    if last is not None:
        row = audit_repository.first_checkpoint_covering(session, last)
        if row is not None:
            return row
    return audit_repository.latest_checkpoint(session)


def _inclusion(
    session: Session, seq: int | None, anchor: AuditCheckpoint | None
) -> InclusionProof | None:
    if seq is None or anchor is None:
        return None
    entry = audit_repository.get_entry(session, seq)
    if entry is None:
        return None
    nodes = fetch_nodes(session, merkle.inclusion_proof_keys(seq, anchor.tree_size))
    proof = merkle.inclusion_proof(seq, anchor.tree_size, merkle.getter_from_mapping(nodes))
    return InclusionProof(
        seq=seq,
        tree_size=anchor.tree_size,
        leaf_hash=merkle.leaf_hash(entry.canonical.encode("utf-8")).hex(),
        proof=[node.hex() for node in proof],
    )


def _checkpoint(row: AuditCheckpoint) -> Checkpoint:
    return Checkpoint(
        tree_size=row.tree_size,
        root_hash=row.root_hash.hex(),
        created_at=row.created_at,
        note=row.note,
    )


def _chain(session: Session, anchor: AuditCheckpoint | None) -> CheckpointChain | None:
    """The consistency proof from the previous report's checkpoint to this report's anchor.

    Raises:
        AuditIntegrityError: the previous report's checkpoint is gone, or lies beyond the
            anchor (the log was cut back).
    """
    if anchor is None:
        return None
    previous = previous_checkpoint(session, REPORT_EVENT)
    if previous is not None and previous.tree_size > anchor.tree_size:
        raise AuditIntegrityError(
            f"the previous report ended at tree size {previous.tree_size}, beyond this "
            f"report's checkpoint ({anchor.tree_size})"
        )
    proof = (
        []
        if previous is None
        else consistency_between(session, previous.tree_size, anchor.tree_size)
    )
    return CheckpointChain(
        previous=None if previous is None else _checkpoint(previous),
        latest=_checkpoint(anchor),
        consistency_proof=[node.hex() for node in proof],
    )


def _removed_tests(session: Session, start: datetime, end: datetime) -> list[RemovedTest]:
    return [
        RemovedTest(seq=e.seq, reason=str(e.document.get("reason") or ""), actor=e.actor)
        for e in audit_repository.entries_of_type(session, "policy.test", start, end)
        if e.document.get("action") == "remove"
    ]


_STATUSES: tuple[ControlStatus, ...] = ("effective", "exception", "gap", "not_applicable")


def _summary(report: Report, findings: list[Finding]) -> Summary:
    log = report.meta.audit_log
    verified = log.verification.verified and log.checkpoint_covers_period
    if verified:
        cp = log.checkpoint
        said = (
            f"The audit log verified ({log.verification.entries_checked} entries, "
            f"{log.verification.checkpoints_checked} signed checkpoints), and the checkpoint "
            f"signed at tree size {cp.tree_size if cp else '?'} covers the period's entries "
            f"{log.first_seq if log.first_seq is not None else '-'}.."
            f"{log.last_seq if log.last_seq is not None else '-'}."
        )
    elif not log.verification.verified:
        said = f"Not verified: {log.verification.error}."
    else:
        said = "Not verified: no signed checkpoint covers the period's last entry."
    if log.entries_after_anchor:
        said += (
            f" {log.entries_after_anchor} entries appended while the report was generated "
            "are left to the next report."
        )
    return Summary(
        period_from=report.meta.period_from,
        period_to=report.meta.period_to,
        systems=[f"{s.name}:{s.version}" for s in report.systems],
        verified=verified,
        verification=said,
        controls=[
            StatusCount(status=st, count=sum(c.status == st for c in report.controls))
            for st in _STATUSES
        ],
        findings=findings,
    )


def _purpose(report: Report) -> str:
    """What the governed AI systems are for, in their model cards' words (not Warden's)."""
    if not report.systems:
        return "No AI system was served or evaluated in the period."
    return " ".join(
        f"{s.name}:{s.version}: "
        + (s.purpose or "no verified model card states this system's intended use.")
        for s in report.systems
    )


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
        purpose="",
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
    anchor_size: int | None = None,
    frameworks: list[str] | None = None,
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
        anchor_size: the tree size of the checkpoint signed for this report; the report's
            range ends at it (None: the checkpoint covering the period's last entry, if any).
        frameworks: narrow the regulation mapping to these framework ids (None: all).

    Returns:
        The report document.

    Raises:
        InvalidPeriod: a naive or empty period.
        UnknownFramework: a framework id with no file under policies/frameworks/.
        InvalidReportConfig: organisation.yaml or a framework file is malformed.
    """
    start, end = check_period(start, end)
    now = utcnow()
    # Read before anything else, so a bad file or framework name costs no log verification.
    organisation = load_organisation(settings.policies_dir)
    framework_files = load_frameworks(settings.policies_dir, frameworks)
    audit_log = _audit_range(
        session, settings, signing_key, start, end, verify=verify, anchor_size=anchor_size
    )
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
        summary=None,
        systems=[],
        organisation=organisation,
        frameworks=[],
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
    report.systems = build_systems(session, report, start=start, end=end)
    report.system.purpose = _purpose(report)
    report.controls, findings = judge(report, _removed_tests(session, start, end))
    report.frameworks = map_frameworks(framework_files, report.controls, organisation)
    report.summary = _summary(report, findings)
    # Validate the assembled document once, so a report that breaks its schema never leaves.
    return Report.model_validate(report.model_dump())
