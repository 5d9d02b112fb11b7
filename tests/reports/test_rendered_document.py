"""What an auditor reads: the PDF and HTML rendered from one real report.

One small deployment per module: a biased model audited, overridden and served, a toy model
served with allowed and denied calls; its report is read back as a reader would (pdftotext,
pypdf, the PNG of every page) and as a browser would (the HTML's markup).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pypdf import PdfReader

from governance.db.base import utcnow
from tests.conftest import auth
from tests.factories import toy_record, upload_body
from tests.fairness.conftest import adult_logreg
from tests.shared_app import SharedApp

needs_poppler = pytest.mark.skipif(
    shutil.which("pdftotext") is None or shutil.which("pdftoppm") is None,
    reason="poppler-utils (pdftotext, pdftoppm) is not installed",
)
# Rendering does not depend on the database; tests/reports/test_reports.py covers both.
pytestmark = pytest.mark.parametrize("shared_app", ["sqlite"], indirect=True)

# What JSON looks like when it leaks into a document: an object's opening or a quoted key.
JSON_LITERAL = re.compile(r'\{\s*"|"\s*:\s*[\[{"\d]|\[\s*\{')


@dataclass
class Rendered:
    folder: Path
    doc: dict[str, Any]
    pdf: Path
    html: str


@pytest.fixture(scope="module")
def rendered(shared_app: SharedApp) -> Rendered:
    client, warden = shared_app.client, shared_app.warden
    engineer = warden.principal("eng", "ml_engineer")
    biased = adult_logreg(shared_app.folder / "adult-lr-1", trained_by="tom-trainer")
    r = client.post("/v1/models", json=upload_body(biased), headers=auth(engineer))
    assert r.status_code == 201, r.text
    audit = {"model": "adult-lr", "sensitive": ["sex", "race"], "bootstrap": 20}
    r = client.post("/v1/fairness/audits", json=audit, headers=auth(engineer))
    assert r.status_code == 201, r.text
    assert r.json()["passed"] is False
    r = client.post(
        "/v1/models", json=upload_body(shared_app.artifact("toy", "1")), headers=auth(engineer)
    )
    assert r.status_code == 201, r.text
    for model in ("adult-lr", "toy"):
        warden.override_gate(model, "1")
        r = client.post(f"/v1/models/{model}/versions/1/promote", headers=auth(shared_app.admin))
        assert r.status_code == 200, r.text
    warden.policy_change([["g2", "model:toy", "group:default-models"]], reason="toy for clients")
    app = warden.principal("app", "client", kind="service")
    stranger = warden.principal("nobody", kind="service")
    for i in range(3):
        r = client.post("/v1/models/toy/predict", json={"record": toy_record(i)}, headers=auth(app))
        assert r.status_code == 200, r.text
    r = client.post("/v1/models/toy/predict", json={"record": toy_record()}, headers=auth(stranger))
    assert r.status_code == 403
    auditor = warden.principal("aud", "auditor")
    now = utcnow()
    period = {
        "from": (now - timedelta(hours=1)).isoformat(),
        "to": (now + timedelta(hours=1)).isoformat(),
    }
    r = client.post("/v1/reports", json=period, headers=auth(auditor))
    assert r.status_code == 201, r.text
    folder = shared_app.settings.reports_dir / r.json()["id"]
    return Rendered(
        folder,
        json.loads((folder / "report.json").read_text()),
        folder / "report.pdf",
        (folder / "report.html").read_text(encoding="utf-8"),
    )


@pytest.fixture(scope="module")
def pages(rendered: Rendered) -> list[str]:
    """Each page's text as pdftotext lays it out."""
    if shutil.which("pdftotext") is None:
        pytest.skip("poppler-utils (pdftotext) is not installed")
    out = subprocess.run(
        ["pdftotext", "-layout", str(rendered.pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return out.split("\f")[:-1]


# --- the PDF --------------------------------------------------------------------------------


def test_pdf_is_tagged_with_title_language_outline_and_generation_time(rendered: Rendered) -> None:
    reader = PdfReader(rendered.pdf)
    meta = rendered.doc["meta"]
    info = reader.metadata
    assert info is not None and meta["id"] in (info.title or "")
    root = reader.trailer["/Root"]
    assert root["/Lang"] == "en"
    assert "/StructTreeRoot" in root and root["/MarkInfo"]["/Marked"]
    created = info.creation_date
    assert created is not None
    generated = datetime.fromisoformat(meta["generated_at"])
    assert created.astimezone(UTC) == generated.replace(microsecond=0)
    titles = set()
    stack: list[Any] = list(reader.outline)
    while stack:  # the outline nests the sections under the cover's title
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        else:
            titles.add(item.title)
    assert {"Contents", "Control matrix", "Usage", "Audit log and anchoring"} - titles == {
        "Contents"
    }


@needs_poppler
def test_every_page_says_page_n_of_m_and_carries_the_running_header(
    rendered: Rendered, pages: list[str]
) -> None:
    assert len(pages) == len(PdfReader(rendered.pdf).pages) >= 5
    meta = rendered.doc["meta"]
    for n, text in enumerate(pages, start=1):
        assert f"page {n} of {len(pages)}" in text, f"page {n}"
        if n > 1:  # the cover has no running header
            assert meta["id"] in text and "period" in text, f"page {n}"


@needs_poppler
def test_contents_give_each_sections_page(rendered: Rendered, pages: list[str]) -> None:
    contents = pages[1]
    assert "Contents" in contents
    entries = re.findall(r"^\s*(\S.*?)\s?(?: ?\.){3,}\s+(\d+)\s*$", contents, re.MULTILINE)
    assert len(entries) == rendered.html.count('<li><a href="#sec-') >= 10
    for title, page in entries:
        # The section's heading is at the top of the page the contents name.
        body = pages[int(page) - 1].splitlines()
        top = [line.strip() for line in body if line.strip()][1:3]
        assert any(line.startswith(title) for line in top), (title, page, top)


@needs_poppler
def test_no_heading_is_left_at_the_foot_of_a_page(rendered: Rendered, pages: list[str]) -> None:
    headings = {
        html.unescape(re.sub(r"<[^>]+>|\s+", " ", h)).strip()
        for h in re.findall(r"<h[2-4][^>]*>(.*?)</h[2-4]>", rendered.html, re.S)
    }
    for n, text in enumerate(pages, start=1):
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        body = lines[1:-1]  # the running header and the footer
        assert body, f"page {n} is empty"
        assert re.sub(r"\s+", " ", body[-1]) not in headings, f"page {n} ends with {body[-1]!r}"


@needs_poppler
def test_no_json_in_the_pdf(pages: list[str]) -> None:
    for n, text in enumerate(pages, start=1):
        found = JSON_LITERAL.search(text)
        assert found is None, f"page {n}: {text[max(0, found.start() - 80) : found.end() + 80]}"


@needs_poppler
def test_every_page_renders_and_its_text_lies_inside_the_page(
    rendered: Rendered, tmp_path: Path
) -> None:
    subprocess.run(
        ["pdftoppm", "-r", "30", "-png", str(rendered.pdf), str(tmp_path / "page")],
        check=True,
        timeout=120,
    )
    pngs = sorted(tmp_path.glob("page*.png"))
    out = subprocess.run(
        ["pdftotext", "-bbox", str(rendered.pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    pages = re.findall(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', out, re.S)
    assert len(pngs) == len(pages) and all(p.stat().st_size > 1000 for p in pngs)
    margin = 16 / 25.4 * 72 - 2  # report.css: 16 mm left and right, 2 pt of slack
    words = 0
    for n, (width, height, body) in enumerate(pages, start=1):
        w, h = float(width), float(height)
        for x0, y0, x1, y1, word in re.findall(
            r'<word xMin="([\d.-]+)" yMin="([\d.-]+)" xMax="([\d.-]+)" yMax="([\d.-]+)">(.*?)</word>',
            body,
        ):
            words += 1
            box = (float(x0), float(y0), float(x1), float(y1))
            assert box[1] >= 0 and box[3] <= h, f"page {n}: {word!r} {box}"
            assert margin <= box[0] and box[2] <= w - margin, f"page {n}: {word!r} {box}"
            # Nothing smaller than 8 pt: a glyph box is about 1.16 em high in these fonts.
            assert box[3] - box[1] >= 8.0, f"page {n}: {word!r} is {box[3] - box[1]:.1f} pt"
    assert words > 500


# --- the HTML -------------------------------------------------------------------------------


class _Cells(HTMLParser):
    """Collects table-cell text, images and everything a CSP would refuse."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.cells: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.links: list[str] = []
        self.refused: list[str] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script" or any(k.startswith("on") or k == "style" for k in names):
            self.refused.append(tag)
        if tag in ("td", "th"):
            self.depth += 1
            self.cells.append("")
        if tag == "img":
            self.images.append(names)
        self.links += [v or "" for k, v in attrs if k in ("src", "href", "srcset", "action")]
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self.depth -= 1
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data
        elif self.depth and self.cells:
            self.cells[-1] += data


def test_html_cells_hold_no_json_and_the_page_is_csp_clean(rendered: Rendered) -> None:
    page = _Cells()
    page.feed(rendered.html)
    assert page.cells and not [c for c in page.cells if JSON_LITERAL.search(c)]
    assert page.refused == []
    # Self-contained: nothing is loaded from anywhere, links only move within the page.
    assert page.links and all(
        link.startswith(("data:image/png;base64,", "#")) for link in page.links
    )
    # The only inline code is the stylesheet, allowed by its hash in the page's own policy.
    digest = base64.b64encode(hashlib.sha256(page.style.encode()).digest()).decode()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', rendered.html)
    assert csp is not None
    policy = html.unescape(csp.group(1))
    assert f"'sha256-{digest}'" in policy
    assert "script-src" not in policy and "default-src 'none'" in policy


def test_every_chart_has_alt_text_and_its_numbers_beside_it(rendered: Rendered) -> None:
    page = _Cells()
    page.feed(rendered.html)
    assert len(page.images) == 3
    for image in page.images:
        src = image.get("src") or ""
        assert src.startswith("data:image/png;base64,")
        assert len(image.get("alt") or "") > 40
        # Printed at 150 dpi in a 7 in column: never shrunk, so its 9 pt text stays above 8 pt.
        png = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert png.size[0] / 150 <= 7.0
    figures = re.findall(r"</figure>\s*(<p class=\"caption\">.*?</table>)?", rendered.html, re.S)
    assert sum(1 for f in figures if "<td>" in f) >= 2  # usage and fairness have data here
    # The fairness chart answers with group sizes and the threshold beside each rate.
    fairness = rendered.html.split('id="fig-fairness"', 1)[1].split("</table>", 1)[0]
    assert "threshold" in fairness and re.search(r"\[0\.\d{3}, 0\.\d{3}\]", fairness)


def test_rates_and_intervals_are_readable(rendered: Rendered) -> None:
    section = rendered.html.split('id="sec-fairness"', 1)[1]
    # Intervals as [lo, hi] to 3 decimals; no float printed with more than 3 decimals.
    assert re.search(r"\[0\.\d{3}, 0\.\d{3}\]", section)
    cells = _Cells()
    cells.feed(rendered.html)
    assert not [c for c in cells.cells if re.search(r"\d\.\d{5,}", c)]
