"""``report.pdf``: the report's HTML page laid out for print by WeasyPrint.

The PDF is tagged (PDF/UA-1: title, language, structure), has an outline from the headings,
a cover, a contents page with page numbers and "page N of M" in the footer (report.css). Its
creation date is the report's generation time, read from the page's ``dcterms.created``.
"""

from __future__ import annotations

from weasyprint import HTML
from weasyprint.urls import URLFetcher

from governance.reports.document import Report
from governance.reports.layout import render_page


def render_pdf(report: Report, charts: dict[str, bytes]) -> bytes:
    """The PDF bytes.

    Args:
        report: the document.
        charts: PNG bytes by chart file name.

    Returns:
        A PDF document.
    """
    page = render_page(report, charts, medium="print")
    # The page is self-contained: data: URIs only, nothing is fetched from disk or network.
    fetcher = URLFetcher(allowed_protocols=("data",), allow_redirects=False)
    pdf = HTML(string=page, url_fetcher=fetcher, media_type="print").write_pdf(
        pdf_variant="pdf/ua-1",
        uncompressed_pdf=False,
    )
    assert pdf is not None  # no target: WeasyPrint returns the bytes
    return bytes(pdf)
