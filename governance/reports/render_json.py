"""``report.json``: the report document, valid against ``docs/report.schema.json``."""

from __future__ import annotations

from governance.reports.document import Report


def render_json(report: Report) -> bytes:
    """The document as indented UTF-8 JSON (times in ISO 8601 UTC)."""
    return report.model_dump_json(indent=2).encode("utf-8") + b"\n"
