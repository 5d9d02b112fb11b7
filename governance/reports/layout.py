"""The human-readable document: one Jinja2 template source for report.html and report.pdf.

The templates render the same data that ``render_json`` writes (``model_dump(mode="json")``),
so the JSON stays the single source of truth and the HTML and PDF cannot drift: the PDF is the
HTML page laid out for print. Sections render in ``SECTION_ORDER``; a key without its own
template under ``templates/sections/`` is drawn by the generic renderer (``readable``), which
turns any JSON value into text, lists and nested tables, never a JSON dump.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from governance.reports.charts import ChartData, chart_data
from governance.reports.document import Report

TEMPLATES = Path(__file__).with_name("templates")
MAX_ROWS = 200  # longer lists are cut in the human-readable forms; report.json has them all
WIDE = 6  # a list of objects with more columns than this is drawn as one card per item

# Reading order; keys not named here follow, then the audit log from ``meta``.
SECTION_ORDER = (
    "summary",
    "findings",
    "controls",
    "systems",
    "frameworks",
    "organisation",
    "system",
    "models",
    "fairness",
    "privacy",
    "access_control",
    "usage",
    "data_protection",
    "logging",
)
SECTION_TITLES = {
    "summary": "Executive summary",
    "findings": "Findings",
    "controls": "Control matrix",
    "systems": "AI systems",
    "frameworks": "Regulation mapping",
    "organisation": "Record of processing (GDPR Art. 30)",
    "system": "Governance platform",
    "models": "Model inventory",
    "fairness": "Fairness",
    "privacy": "Privacy",
    "access_control": "Access control",
    "usage": "Usage",
    "data_protection": "Data protection",
    "logging": "Logging",
    "audit_log": "Audit log and anchoring",
}

STATUS_KEYS = frozenset({"status", "severity", "outcome", "decision"})
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
_HASH = re.compile(r"^[0-9a-f]{40,}\Z")


# --- filters: one value's text --------------------------------------------------------------


def when(value: Any) -> str:
    """A time as ``2026-01-31 14:05:09 UTC`` (ISO strings and datetimes)."""
    if value is None:
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def day(value: Any) -> str:
    """A time as its date only."""
    text = when(value)
    return text[:10] if _ISO_TIME.match(str(value or "")) or isinstance(value, datetime) else text


def number(value: Any, places: int = 3) -> str:
    """A float to ``places`` decimals (an int as it is); None is a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.{places}f}" if abs(value) < 1e6 else f"{value:.4g}"
    return str(value)


def rate(value: Any) -> str:
    """A rate or ratio, 3 decimals."""
    return number(value, 3)


def interval(value: Any) -> str:
    """A confidence interval ``{"low": .., "high": ..}`` as ``[0.412, 0.530]``."""
    if not isinstance(value, dict) or (value.get("low") is None and value.get("high") is None):
        return "—"
    return f"[{rate(value.get('low'))}, {rate(value.get('high'))}]"


def short(value: Any, keep: int = 12) -> Markup:
    """A hash or long identifier shortened to its head and tail; the full value in ``title``
    (the HTML shows it on hover; report.json and the key/value tables print it in full)."""
    text = "—" if value is None else str(value)
    if len(text) <= keep + 4:
        return Markup('<span class="id">{}</span>').format(text)
    cut = f"{text[: keep - 4]}…{text[-4:]}"
    return Markup('<abbr class="id" title="{}">{}</abbr>').format(text, cut)


def seqs(values: Any) -> str:
    """Audit sequence numbers as ranges: ``3–7, 9, 12–15``."""
    nums = sorted({int(v) for v in values or [] if isinstance(v, int)})
    if not nums:
        return "—"
    runs: list[str] = []
    start = prev = nums[0]
    for n in [*nums[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        runs.append(str(start) if start == prev else f"{start}–{prev}")
        if n is not None:
            start = prev = n
    if len(runs) > 12:
        return f"{', '.join(runs[:6])}, … {', '.join(runs[-3:])} ({len(nums)} entries)"
    return ", ".join(runs)


def title(key: Any) -> str:
    """A field name as a heading: ``selection_rate_ci`` → ``Selection rate CI``."""
    words = str(key).replace("_", " ").replace("-", " ").split()
    upper = {"ci", "id", "dp", "eu", "ai", "gdpr", "sha256", "nist", "iso", "rmf", "url", "kek"}
    out = [w.upper() if w.lower() in upper else w for w in words]
    if out and out[0] == words[0]:
        out[0] = out[0][:1].upper() + out[0][1:]
    return " ".join(out)


def status(value: Any) -> Markup:
    """A control or finding status as a labelled badge (the class carries the colour)."""
    text = "—" if value is None else str(value)
    css = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "none"
    return Markup('<span class="status status-{}">{}</span>').format(css, text.replace("_", " "))


def pointer(value: Any) -> Markup:
    """A JSON Pointer into this report as a link to the section that shows it."""
    text = str(value)
    head = text.lstrip("/").split("/", 1)[0]
    target = "sec-audit_log" if head == "meta" else f"sec-{head}"
    return Markup('<a class="ref" href="#{}">{}</a>').format(target, text)


def rules(values: Any) -> Markup:
    """Casbin rules grouped for reading: one row per subject and effect listing what it may
    do (``object: action, action``), then the role and group memberships; never cut."""
    grants: dict[tuple[str, str], dict[str, list[str]]] = {}
    members: dict[tuple[str, str], list[str]] = {}
    other: list[list[str]] = []
    for rule in values or []:
        parts = [str(x) for x in rule]
        if len(parts) >= 4 and parts[0] == "p":
            effect = parts[4] if len(parts) > 4 else "allow"
            by_obj = grants.setdefault((parts[1], effect), {})
            by_obj.setdefault(parts[2], []).append(parts[3])
        elif len(parts) == 3 and parts[0].startswith("g"):
            members.setdefault((parts[0], parts[2]), []).append(parts[1])
        else:
            other.append(parts)
    rows = [
        Markup("<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>").format(
            subject,
            effect,
            Markup("; ").join(
                Markup('<span class="grant"><code>{}</code>: {}</span>').format(
                    obj, ", ".join(acts)
                )
                for obj, acts in sorted(by_obj.items())
            ),
        )
        for (subject, effect), by_obj in sorted(grants.items())
    ]
    rows += [
        Markup("<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>").format(
            role,
            "members" if kind == "g" else f"members ({kind})",
            Markup(", ").join(Markup("<code>{}</code>").format(m) for m in sorted(names)),
        )
        for (kind, role), names in sorted(members.items())
    ]
    rows += [
        Markup('<tr><td colspan="3"><code>{}</code></td></tr>').format(", ".join(parts))
        for parts in other
    ]
    if not rows:
        return Markup('<span class="none">none</span>')
    return Markup(
        '<table class="rows full policy"><thead><tr><th scope="col">Subject or role</th>'
        '<th scope="col">Effect</th><th scope="col">Objects and actions, or members</th>'
        "</tr></thead><tbody>{}</tbody></table>"
    ).format(Markup("").join(rows))


# --- the generic renderer -------------------------------------------------------------------


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _text(value: Any, *, in_row: bool) -> Markup:
    if value is None:
        return Markup('<span class="none">—</span>')
    if isinstance(value, bool | int | float):
        return Markup('<span class="num">{}</span>').format(number(value))
    text = str(value)
    if _ISO_TIME.match(text):
        return Markup('<span class="num">{}</span>').format(when(text))
    if _HASH.match(text):
        return short(text) if in_row else Markup('<span class="hash">{}</span>').format(text)
    if text.startswith("/") and " " not in text and len(text) > 1:
        return pointer(text)
    return escape(text)


def readable(value: Any, depth: int = 0, *, in_row: bool = False) -> Markup:
    """Any JSON value as readable markup: scalars as text, lists of scalars as lists, objects
    as two-column tables, lists of objects as tables (one card each when they are too wide).

    Args:
        value: a JSON value (from ``model_dump(mode="json")``).
        depth: nesting depth, for the markup's classes.
        in_row: the value sits in a table row: hashes are shortened.
    """
    if _scalar(value):
        return _text(value, in_row=in_row)
    if isinstance(value, dict):
        if set(value) == {"low", "high"}:
            return Markup('<span class="num">{}</span>').format(interval(value))
        if not value:
            return Markup('<span class="none">none</span>')
        # A two-column table, not a <dl> grid: WeasyPrint lays tables out far faster.
        items = Markup("").join(
            Markup('<tr><th scope="row">{}</th><td>{}</td></tr>').format(
                title(k), _field(k, v, depth + 1, in_row=in_row)
            )
            for k, v in value.items()
        )
        return Markup('<table class="kv depth-{}"><tbody>{}</tbody></table>').format(depth, items)
    if isinstance(value, list):
        if not value:
            return Markup('<span class="none">none</span>')
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return Markup('<span class="num">{}</span>').format(seqs(value))
        if all(isinstance(v, list) and all(_scalar(x) for x in v) for v in value):
            # Policy rules and similar tuples: one per line, never cut.
            lines = Markup("").join(
                Markup("<li><code>{}</code></li>").format(", ".join(str(x) for x in v))
                for v in value[:MAX_ROWS]
            )
            return Markup('<ul class="rules">{}</ul>{}').format(lines, _more(len(value)))
        if all(_scalar(v) for v in value):
            texts = [_text(v, in_row=in_row) for v in value]
            if all(len(str(v)) <= 40 for v in value):
                return Markup(", ").join(texts)
            return Markup('<ul class="plain">{}</ul>').format(
                Markup("").join(Markup("<li>{}</li>").format(t) for t in texts)
            )
        if all(isinstance(v, dict) for v in value):
            return records(value, depth)
        return Markup('<ul class="plain">{}</ul>').format(
            Markup("").join(
                Markup("<li>{}</li>").format(readable(v, depth + 1, in_row=in_row))
                for v in value[:MAX_ROWS]
            )
        )
    return escape(str(value))


def _field(key: str, value: Any, depth: int, *, in_row: bool) -> Markup:
    """One field's value; a status or severity is a badge, wherever it sits."""
    if key in STATUS_KEYS and isinstance(value, str):
        return status(value)
    return readable(value, depth, in_row=in_row)


def _more(n: int) -> Markup:
    if n <= MAX_ROWS:
        return Markup("")
    return Markup('<p class="more">{} more are in report.json</p>').format(n - MAX_ROWS)


def records(
    items: list[dict[str, Any]], depth: int = 0, columns: list[str] | None = None
) -> Markup:
    """A list of objects as a table with a column per key; as cards when wider than ``WIDE``
    or when a column holds nested objects that would not fit a cell."""
    if not items:
        return Markup('<p class="none">none recorded in this period</p>')
    keys = columns or list(dict.fromkeys(k for item in items for k in item))
    nested = [k for k in keys if any(not _scalar(item.get(k)) for item in items)]
    if len(keys) > WIDE or any(
        isinstance(item.get(k), dict | list) and len(item.get(k) or []) > 3
        for item in items
        for k in nested
    ):
        cards = Markup("").join(
            Markup('<div class="card">{}</div>').format(readable(item, depth + 1))
            for item in items[:MAX_ROWS]
        )
        return Markup('<div class="cards">{}</div>{}').format(cards, _more(len(items)))
    head = Markup("").join(Markup('<th scope="col">{}</th>').format(title(k)) for k in keys)
    body = Markup("").join(
        Markup("<tr>{}</tr>").format(
            Markup("").join(
                Markup("<td>{}</td>").format(_field(k, item.get(k), depth + 1, in_row=True))
                for k in keys
            )
        )
        for item in items[:MAX_ROWS]
    )
    return Markup(
        '<table class="rows"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>{}'
    ).format(head, body, _more(len(items)))


# --- the page's context ---------------------------------------------------------------------


@dataclass
class Figure:
    """A chart as the page shows it: the image, its alt text and its numbers."""

    data: ChartData
    src: str  # a data: URI; the page is self-contained


@dataclass
class Section:
    key: str
    title: str
    data: Any
    template: str
    figures: list[Figure] = field(default_factory=list)


def environment() -> Environment:
    """The template environment: autoescaped, undefined names fail the render."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["j2", "html"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        when=when,
        day=day,
        number=number,
        rate=rate,
        interval=interval,
        short=short,
        seqs=seqs,
        title=title,
        status=status,
        pointer=pointer,
        readable=readable,
        records=records,
        rules=rules,
    )
    return env


def _sections(doc: dict[str, Any], figures: list[Figure]) -> list[Section]:
    env_templates = {p.name for p in (TEMPLATES / "sections").glob("*.html.j2")}
    keys = [k for k in SECTION_ORDER if k in doc]
    keys += [k for k in doc if k not in keys and k != "meta"]
    out = []
    for key in [*keys, "audit_log"]:
        data = doc["meta"]["audit_log"] if key == "audit_log" else doc[key]
        name = f"{key}.html.j2"
        out.append(
            Section(
                key=key,
                title=SECTION_TITLES.get(key, title(key)),
                data=data,
                template=f"sections/{name}"
                if name in env_templates
                else "sections/_generic.html.j2",
                figures=[f for f in figures if f.data.section == key],
            )
        )
    return out


def stylesheet() -> str:
    return (TEMPLATES / "report.css").read_text(encoding="utf-8")


def render_page(report: Report, charts: dict[str, bytes], *, medium: str) -> str:
    """The report as one HTML page.

    Args:
        report: the document.
        charts: PNG bytes by chart file name (``charts.render_charts``).
        medium: ``screen`` (report.html) or ``print`` (the HTML WeasyPrint lays out).
    """
    doc = report.model_dump(mode="json")
    figures = [
        Figure(c, "data:image/png;base64," + base64.b64encode(charts[c.name]).decode("ascii"))
        for c in chart_data(report)
        if c.name in charts
    ]
    css = stylesheet()
    # The page's only inline code is its stylesheet, allowed by hash: no 'unsafe-inline'.
    css_hash = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    template = environment().get_template("report.html.j2")
    return template.render(
        doc=doc,
        meta=doc["meta"],
        sections=_sections(doc, figures),
        css=Markup(css),  # noqa: S704 - the package's own stylesheet, not data
        csp=f"default-src 'none'; img-src data:; style-src 'sha256-{css_hash}'",
        medium=medium,
    )
