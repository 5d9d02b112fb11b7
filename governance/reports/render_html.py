"""``report.html``: one self-contained page (inline CSS, charts as base64 PNG, no scripts)."""

from __future__ import annotations

import base64
from html import escape

from governance.reports.document import Report
from governance.reports.layout import Chart, Heading, Para, Table, layout

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{border-bottom:2px solid #333}h2{margin-top:2em;border-bottom:1px solid #999}
table{border-collapse:collapse;margin:.5em 0;font-size:12px;width:100%}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top;
word-break:break-word}th{background:#f0f0f0}
figure{margin:1em 0}figcaption{font-size:12px;color:#555}
.status-failed{color:#b00;font-weight:bold}.status-no_data{color:#777}
"""


def render_html(report: Report, charts: dict[str, bytes]) -> bytes:
    """The page.

    Args:
        report: the document.
        charts: PNG bytes by chart file name (``charts.render_charts``).

    Returns:
        UTF-8 HTML.
    """
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Warden compliance report {escape(report.meta.id)}</title>",
        f"<style>{_CSS}</style></head><body>",
    ]
    for block in layout(report):
        if isinstance(block, Heading):
            level = min(block.level + 1, 6)
            parts.append(f"<h{level}>{escape(block.text)}</h{level}>")
        elif isinstance(block, Para):
            parts.append(f"<p>{escape(block.text)}</p>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{escape(h)}</th>" for h in block.header)
            body = "".join(
                "<tr>" + "".join(_cell(block.header, i, c) for i, c in enumerate(row)) + "</tr>"
                for row in block.rows
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, Chart):
            data = base64.b64encode(charts[block.name]).decode("ascii")
            parts.append(
                f'<figure><img alt="{escape(block.caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{escape(block.caption)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts).encode("utf-8")


def _cell(header: list[str], index: int, value: str) -> str:
    if header[index] == "status":
        return f'<td class="status-{escape(value)}">{escape(value)}</td>'
    return f"<td>{escape(value)}</td>"
