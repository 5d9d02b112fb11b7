"""The console's templates hold nothing its Content-Security-Policy would block: no inline
script (a JSON data island is not executed), no style attribute, no event-handler attribute,
no htmx expression (htmx runs with eval off)."""

from __future__ import annotations

import re
from pathlib import Path

from governance.console.render import TEMPLATES

BLOCKED = {
    "inline script": re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")"),
    "style attribute": re.compile(r"\sstyle="),
    "event-handler attribute": re.compile(r"\son[a-z]+=", re.IGNORECASE),
    "htmx expression": re.compile(r"\shx-on|[\"']js:"),
    "third-party address": re.compile(r"(src|href)=\"(https?:)?//"),
    # Imported macros see the page's CSRF token only when imported with the page's context.
    "csrf macro without the page's context": re.compile(r"import .*\bcsrf\b(?!.*with context)"),
}


def test_no_template_holds_what_the_policy_blocks() -> None:
    templates = sorted(TEMPLATES.rglob("*.j2"))
    assert len(templates) >= 20
    found = [
        f"{path.relative_to(TEMPLATES)}:{n}: {what}"
        for path in templates
        for n, line in enumerate(Path(path).read_text().splitlines(), 1)
        for what, pattern in BLOCKED.items()
        if pattern.search(line)
    ]
    assert found == []
