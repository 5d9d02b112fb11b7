"""The human-readable layout shared by the HTML and PDF renderers.

The report is turned once into a flat list of blocks (headings, key/value tables, row tables,
charts); each renderer only draws blocks, so HTML and PDF always show the same content.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from governance.reports.document import Report

MAX_ROWS = 200  # longer lists are cut in the human-readable forms; report.json has them all


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 1


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Chart:
    name: str
    caption: str


Block = Heading | Para | Table | Chart

SECTIONS: tuple[tuple[str, str, str | None], ...] = (
    ("system", "System", None),
    ("models", "Model inventory", None),
    ("privacy", "Privacy", "privacy.png"),
    ("fairness", "Fairness", "fairness.png"),
    ("access_control", "Access control", None),
    ("usage", "Usage", "requests.png"),
    ("data_protection", "Data protection", None),
    ("logging", "Logging", None),
)
CHART_CAPTIONS = {
    "requests.png": "Requests and denials over time",
    "fairness.png": "Fairness by group, with confidence intervals",
    "privacy.png": "Privacy-budget use",
}


def text(value: Any) -> str:
    """One cell's text."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value) if value else "—"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)[:400]
    return str(value)


def _title(key: str) -> str:
    return key.replace("_", " ").capitalize()


def _blocks(name: str, value: Any, level: int) -> list[Block]:
    """Blocks for one field: scalars go in the parent's key/value table, lists of objects
    become row tables, nested objects get their own heading."""
    out: list[Block] = []
    if isinstance(value, dict):
        scalars = [
            [_title(k), text(v)]
            for k, v in value.items()
            if not isinstance(v, dict)
            and not (isinstance(v, list) and v and isinstance(v[0], dict))
        ]
        if scalars:
            out.append(Table(["field", "value"], scalars))
        for k, v in value.items():
            if isinstance(v, dict) and k not in ("model_card", "document", "retention"):
                out.append(Heading(_title(k), level + 1))
                out.extend(_blocks(k, v, level + 1))
            elif isinstance(v, dict):
                out.append(Heading(_title(k), level + 1))
                out.append(Para(text(v)))
            elif isinstance(v, list) and v and isinstance(v[0], dict):
                out.append(Heading(f"{_title(k)} ({len(v)})", level + 1))
                out.extend(_rows(v))
    elif isinstance(value, list):
        out.extend(_rows(value) if value else [Para("none recorded in this period")])
    return out


def _rows(items: list[dict[str, Any]]) -> list[Block]:
    header = [k for k in items[0] if k not in ("model_card", "note", "features", "document")]
    rows = [[text(item.get(k)) for k in header] for item in items[:MAX_ROWS]]
    out: list[Block] = [Table([_title(h) for h in header], rows)]
    if len(items) > MAX_ROWS:
        out.append(Para(f"{len(items) - MAX_ROWS} more rows are in report.json"))
    for item in items[:MAX_ROWS]:
        # Fairness audits: one table of groups per audited feature.
        for feature in item.get("features") or []:
            out.append(Heading(f"Audit {item.get('id')}: {feature['name']}", 4))
            out.extend(_rows(feature["groups"]) if feature["groups"] else [])
    return out


def layout(report: Report) -> list[Block]:
    """The report as blocks, in reading order."""
    doc = report.model_dump(mode="python")
    meta = doc["meta"]
    log = meta["audit_log"]
    verification = log["verification"]
    blocks: list[Block] = [
        Heading(f"Compliance report {meta['id']}", 0),
        Para(
            f"Period {text(meta['period_from'])} to {text(meta['period_to'])}"
            + (f", model {meta['model']}" if meta["model"] else "")
            + f". Generated {text(meta['generated_at'])} by {meta['generated_by']} with "
            f"{meta['generator']['name']} {meta['generator']['version']}."
        ),
        Para(
            f"Audit log: entries {text(log['first_seq'])} to {text(log['last_seq'])} "
            f"({log['entries_in_period']} in the period) of {log['tree_size_at_generation']}. "
            + (
                f"Verified: {verification['entries_checked']} entries and "
                f"{verification['checkpoints_checked']} signed checkpoints."
                if verification["verified"]
                else f"NOT VERIFIED: {verification['error']}"
            )
        ),
        Heading("Control matrix", 1),
        Table(
            [
                "id",
                "control",
                "status",
                "EU AI Act",
                "GDPR",
                "NIST AI RMF",
                "ISO/IEC 42001",
                "evidence",
            ],
            [
                [
                    c["id"],
                    c["title"],
                    c["status"],
                    text(c["references"]["eu_ai_act"]),
                    text(c["references"]["gdpr"]),
                    text(c["references"]["nist_ai_rmf"]),
                    text(c["references"]["iso_42001"]),
                    text(c["evidence"]),
                ]
                for c in doc["controls"]
            ],
        ),
        Heading("Audit log", 1),
    ]
    blocks.extend(_blocks("audit_log", log, 1))
    for key, title, chart in SECTIONS:
        blocks.append(Heading(title, 1))
        if chart is not None:
            blocks.append(Chart(chart, CHART_CAPTIONS[chart]))
        blocks.extend(_blocks(key, doc[key], 1))
    return blocks
