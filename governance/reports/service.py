"""Generating, listing and serving report folders under ``settings.reports_dir``.

A report folder is ``<reports_dir>/<report id>/`` with ``report.json``, ``report.html``,
``report.pdf`` and the signed ``manifest.json``. It is written to a hidden temporary folder
and renamed into place, so a reader never sees half a report. The folders are the store: the
export itself is recorded in the audit log (``report.export``) with the manifest's sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from governance.audit import log as audit_log
from governance.config import Settings
from governance.kit.context import Context
from governance.private_files import open_private, private_dir
from governance.reports.builder import build_report
from governance.reports.document import Report
from governance.reports.errors import ReportNotFound
from governance.reports.manifest import MANIFEST_FILE, build_manifest
from governance.reports.render_json import render_json

REPORT_FILES = ("report.json", "report.html", "report.pdf", MANIFEST_FILE)
MEDIA_TYPES = {
    "report.json": "application/json",
    "report.html": "text/html; charset=utf-8",
    "report.pdf": "application/pdf",
    MANIFEST_FILE: "application/json",
}
_ID_RE = re.compile(r"^rpt-\d{8}T\d{6}Z-[0-9a-f]{8}\Z")


@dataclass(frozen=True)
class GeneratedReport:
    """A report written to disk."""

    report: Report
    folder: Path
    files: dict[str, str]  # name -> sha256, manifest included

    @property
    def manifest_sha256(self) -> str:
        return self.files[MANIFEST_FILE]


@dataclass(frozen=True)
class StoredReport:
    """A report folder found on disk (its meta read from report.json)."""

    id: str
    folder: Path
    period_from: datetime
    period_to: datetime
    model: str | None
    generated_at: datetime
    generated_by: str
    files: list[str]


def _write_folder(root: Path, report_id: str, files: dict[str, bytes]) -> Path:
    # Reports quote principals and decisions: 0600 files in 0700 folders, whatever the umask.
    private_dir(root)
    tmp = root / f".{report_id}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    private_dir(tmp)
    for name, data in files.items():
        with open_private(tmp / name) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    final = root / report_id
    tmp.rename(final)
    return final


class ReportService:
    """Stateless; never commits."""

    def generate(
        self,
        session: Session,
        settings: Settings,
        ctx: Context,
        *,
        signing_key: Ed25519PrivateKey,
        start: datetime,
        end: datetime,
        model: str | None = None,
        verify: bool = True,
        anchor_size: int | None = None,
        frameworks: list[str] | None = None,
    ) -> GeneratedReport:
        """Build the report over ``[start, end)`` and write its signed folder.

        Args:
            session: a (preferably snapshot, read-only) session: nothing is written to it.
            settings: reports_dir, policy files, log origin.
            ctx: who asks (quoted in the report).
            signing_key: the audit log's key, which signs the manifest.
            start: period start, timezone-aware.
            end: period end (exclusive).
            model: restrict the model-specific sections to one model.
            verify: verify the whole live log for the meta section.
            anchor_size: the tree size of the checkpoint signed for this report.
            frameworks: narrow the regulation mapping to these framework ids.

        Returns:
            The report and where it was written. Call :meth:`record_export` next.

        Raises:
            InvalidPeriod: a naive or empty period.
            UnknownFramework: a framework id with no file.
        """
        report = build_report(
            session,
            settings,
            signing_key=signing_key,
            start=start,
            end=end,
            model=model,
            generated_by=ctx.name,
            verify=verify,
            anchor_size=anchor_size,
            frameworks=frameworks,
        )
        # The renderers bring matplotlib and reportlab (about 0.6 s to import): loaded by the
        # first export, not by every server start and CLI command.
        from governance.reports.charts import render_charts
        from governance.reports.render_html import render_html
        from governance.reports.render_pdf import render_pdf

        charts = render_charts(report)
        files = {
            "report.json": render_json(report),
            "report.html": render_html(report, charts),
            "report.pdf": render_pdf(report, charts),
        }
        files[MANIFEST_FILE] = build_manifest(
            report.meta.id, files, origin=settings.log_origin, key=signing_key
        )
        folder = _write_folder(settings.reports_dir, report.meta.id, files)
        return GeneratedReport(
            report=report,
            folder=folder,
            files={name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
        )

    def record_export(self, session: Session, ctx: Context, generated: GeneratedReport) -> int:
        """Append the ``report.export`` audit event in the caller's transaction.

        Returns:
            The event's sequence number.
        """
        meta = generated.report.meta
        (seq,) = audit_log.append(
            session,
            [
                ctx.event(
                    "report.export",
                    "export",
                    resource={"report": meta.id},
                    details={
                        "period_from": meta.period_from.isoformat(),
                        "period_to": meta.period_to.isoformat(),
                        "model": meta.model,
                        "files": generated.files,
                        "manifest_sha256": generated.manifest_sha256,
                        "log_verified": meta.audit_log.verification.verified,
                        "last_seq": meta.audit_log.last_seq,
                        # The next report proves its log extends this checkpoint.
                        "checkpoint": None
                        if meta.audit_log.chain is None
                        else meta.audit_log.chain.latest.tree_size,
                    },
                )
            ],
        )
        return seq

    def list(self, settings: Settings) -> list[StoredReport]:
        """Every complete report folder, newest first."""
        root = settings.reports_dir
        if not root.is_dir():
            return []
        found = []
        for folder in root.iterdir():
            if folder.is_dir() and _ID_RE.fullmatch(folder.name):
                stored = self._read(folder)
                if stored is not None:
                    found.append(stored)
        return sorted(found, key=lambda r: (r.generated_at, r.id), reverse=True)

    def get(self, settings: Settings, report_id: str) -> StoredReport:
        """One report folder.

        Raises:
            ReportNotFound: no such report.
        """
        if not _ID_RE.fullmatch(report_id):
            raise ReportNotFound(f"no report {report_id[:64]!r}")
        stored = self._read(settings.reports_dir / report_id)
        if stored is None:
            raise ReportNotFound(f"no report {report_id!r}")
        return stored

    def file(self, settings: Settings, report_id: str, name: str) -> Path:
        """The path of one file of a report.

        Raises:
            ReportNotFound: no such report or file.
        """
        stored = self.get(settings, report_id)
        if name not in REPORT_FILES or name not in stored.files:
            raise ReportNotFound(f"report {report_id} has no file {name[:64]!r}")
        return stored.folder / name

    @staticmethod
    def _read(folder: Path) -> StoredReport | None:
        try:
            meta: dict[str, Any] = json.loads((folder / "report.json").read_bytes())["meta"]
        except (OSError, ValueError, KeyError):
            return None
        return StoredReport(
            id=folder.name,
            folder=folder,
            period_from=datetime.fromisoformat(meta["period_from"]),
            period_to=datetime.fromisoformat(meta["period_to"]),
            model=meta.get("model"),
            generated_at=datetime.fromisoformat(meta["generated_at"]),
            generated_by=meta.get("generated_by", ""),
            files=sorted(p.name for p in folder.iterdir() if p.name in REPORT_FILES),
        )


reports = ReportService()
