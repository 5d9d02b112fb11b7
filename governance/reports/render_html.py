"""``report.html``: one self-contained page (inline CSS allowed by hash, charts as data URIs,
no scripts), rendered from the report's templates."""

from __future__ import annotations

from governance.reports.document import Report
from governance.reports.layout import render_page


def render_html(report: Report, charts: dict[str, bytes]) -> bytes:
    """The page.

    Args:
        report: the document.
        charts: PNG bytes by chart file name (``charts.render_charts``).

    Returns:
        UTF-8 HTML.
    """
    return render_page(report, charts, medium="screen").encode("utf-8")
