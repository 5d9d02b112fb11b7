"""Errors of the reports domain."""

from __future__ import annotations

from governance.errors import (
    BadRequest,
    NotFound,
    Unprocessable,
    VerificationFailed,
    WardenError,
)


class ReportError(WardenError):
    """Base of every reports error."""

    title = "Report error"
    type_slug = "report"


class InvalidPeriod(ReportError, BadRequest):
    """The requested period is empty, reversed or not in UTC."""

    status_code = 400
    title = "Invalid report period"
    type_slug = "report-period"


class ReportNotFound(ReportError, NotFound):
    """No report (or no such file in a report) with that id."""

    status_code = 404
    title = "Report not found"
    type_slug = "report-not-found"


class ReportVerificationError(ReportError, Unprocessable, VerificationFailed):
    """A report folder does not match its signed manifest (a file changed, was added or removed,
    or the signature does not verify under the trusted key)."""

    status_code = 422
    title = "Report verification failed"
    type_slug = "report-verification"


class InvalidReportConfig(ReportError, Unprocessable):
    """``policies/organisation.yaml`` or a framework file under ``policies/frameworks/`` does
    not have the documented shape (docs/reports.md)."""

    status_code = 422
    title = "Invalid report configuration"
    type_slug = "report-config"


class UnknownFramework(ReportError, Unprocessable):
    """A report was narrowed to a framework no file under ``policies/frameworks/`` defines."""

    status_code = 422
    title = "Unknown framework"
    type_slug = "report-framework"
