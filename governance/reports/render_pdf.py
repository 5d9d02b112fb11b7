"""``report.pdf``: the same blocks as the HTML page, laid out with reportlab (landscape A4)."""

from __future__ import annotations

import io
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.platypus import (
    Flowable,
    Image,
    LongTable,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    TableStyle,
)

from governance.reports.document import Report
from governance.reports.layout import Chart, Heading, Para, Table, layout

_MAX_CELL = 300  # characters per cell; a PDF cell cannot scroll


def render_pdf(report: Report, charts: dict[str, bytes]) -> bytes:
    """The PDF bytes.

    Args:
        report: the document.
        charts: PNG bytes by chart file name.

    Returns:
        A PDF document.
    """
    styles = getSampleStyleSheet()
    cell = ParagraphStyle("cell", parent=styles["BodyText"], fontSize=6.5, leading=8)
    head = ParagraphStyle("head", parent=cell, fontName="Helvetica-Bold")
    headings = {
        0: styles["Title"],
        1: styles["Heading1"],
        2: styles["Heading2"],
        3: styles["Heading3"],
    }
    buf = io.BytesIO()
    page = landscape(A4)
    doc = SimpleDocTemplate(
        buf,
        pagesize=page,
        leftMargin=1.2 * cm,
        rightMargin=1.2 * cm,
        topMargin=1.2 * cm,
        bottomMargin=1.2 * cm,
        title=f"Warden compliance report {report.meta.id}",
        author="Warden",
        invariant=1,
    )
    width = page[0] - 2.4 * cm
    story: list[Flowable] = []
    for block in layout(report):
        if isinstance(block, Heading):
            story.append(
                Paragraph(escape(block.text), headings.get(block.level, styles["Heading4"]))
            )
        elif isinstance(block, Para):
            story.append(Paragraph(escape(block.text), styles["BodyText"]))
        elif isinstance(block, Table):
            data = [[Paragraph(escape(h), head) for h in block.header]]
            data += [[Paragraph(escape(c[:_MAX_CELL]), cell) for c in row] for row in block.rows]
            table = LongTable(
                data, colWidths=[width / len(block.header)] * len(block.header), repeatRows=1
            )
            table.setStyle(
                TableStyle(
                    [
                        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
                        ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ]
                )
            )
            story.extend([table, Spacer(1, 4)])
        elif isinstance(block, Chart):
            image = Image(io.BytesIO(charts[block.name]))
            scale = min(1.0, width * 0.8 / image.drawWidth)
            image.drawWidth *= scale
            image.drawHeight *= scale
            story.extend([image, Paragraph(escape(block.caption), styles["Italic"])])
    doc.build(story)
    return buf.getvalue()
