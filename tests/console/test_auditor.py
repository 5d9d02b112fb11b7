"""The auditor's console (issue 29): a report generated as a job and downloaded, an entry's
inclusion proof verified by the browser itself, a tampered proof shown as failed, the
consistency of checkpoints, the privacy ledger, and who may not open any of it."""

from __future__ import annotations

import re
import urllib.parse

from playwright.sync_api import Page, expect

from governance.console.auditor.log_pages import PAGE_SIZE
from governance.kit.http import client as http_client
from tests.console.people import axe_violations, person, sign_in
from tests.servers import SharedServer

# Report generation verifies the whole log and renders a PDF: seconds, more on a busy machine.
GENERATION_MS = 90_000


def _tamper_decision(page: Page, island: str = "proof-data") -> None:
    """Alter the entry's signed text in the page, as a lying server or a proxy would."""
    page.evaluate(
        """(id) => {
            const island = document.getElementById(id);
            const payload = JSON.parse(island.textContent);
            const entry = JSON.parse(payload.canonical);
            entry.decision = entry.decision === "deny" ? "allow" : "deny";
            payload.canonical = JSON.stringify(entry);
            island.textContent = JSON.stringify(payload);
        }""",
        island,
    )


def test_an_auditor_generates_downloads_and_verifies(
    shared_server: SharedServer, page: Page
) -> None:
    auditor = person(shared_server, "auditor", prefix="auditor")
    sign_in(page, shared_server, auditor, "/console/reports")
    assert axe_violations(page) == []

    page.get_by_role("button", name="Generate report").click()
    page.wait_for_url(re.compile(r".*/console/reports/jobs/[0-9a-f]+$"))
    assert page.get_by_role("heading", level=1).inner_text() == "Generating a report"
    assert axe_violations(page) == []
    # htmx polls the job until the report is written, then links it.
    ready = page.get_by_role("link", name=re.compile(r"^open rpt-"))
    expect(ready).to_be_visible(timeout=GENERATION_MS)
    ready.click()
    page.wait_for_url(re.compile(r".*/console/reports/rpt-[^/]+$"))
    assert axe_violations(page) == []
    assert auditor.name in page.locator("main").inner_text()

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download PDF").click()
    pdf = download_info.value.path().read_bytes()
    assert pdf.startswith(b"%PDF")

    page.get_by_role("link", name=re.compile(r"^Verify report")).click()
    expect(page.get_by_role("status")).to_contain_text("every file matches it")
    assert axe_violations(page) == []

    # The log, narrowed to this auditor: the sign-in was recorded before the report's checkpoint.
    query = urllib.parse.urlencode({"actor": auditor.name, "event_type": "principal.session"})
    page.goto(f"{shared_server.url}/console/audit?{query}")
    assert axe_violations(page) == []
    rows = page.locator("tbody tr")
    assert rows.count() >= 1
    rows.first.get_by_role("link").click()
    page.wait_for_url(re.compile(r".*/console/audit/entries/\d+$"))

    verdict = page.locator("[data-proof] [role=status]")
    expect(verdict).to_have_class(re.compile(r"\bok\b"))
    assert verdict.inner_text().startswith("Verified: entry ")
    assert axe_violations(page) == []

    _tamper_decision(page)
    page.get_by_role("button", name="Verify again").click()
    expect(verdict).to_have_class(re.compile(r"\bfailed\b"))
    assert verdict.inner_text().startswith("Not verified: ")

    # Every checkpoint the log signed extends the first one.
    page.goto(f"{shared_server.url}/console/audit/consistency")
    assert axe_violations(page) == []
    page.get_by_role("button", name="Check consistency").click()
    expect(verdict).to_have_class(re.compile(r"\bok\b"))
    assert axe_violations(page) == []


def test_the_ledger_and_bad_filters(shared_server: SharedServer, page: Page) -> None:
    auditor = person(shared_server, "auditor", prefix="auditor")
    sign_in(page, shared_server, auditor, "/console/privacy")
    assert axe_violations(page) == []
    page.get_by_label("Dataset", exact=True).fill("adult")
    page.get_by_role("button", name="Show ledger").click()
    expect(page.get_by_role("heading", name="Dataset adult")).to_be_visible()
    assert axe_violations(page) == []

    missing = page.goto(f"{shared_server.url}/console/privacy?dataset=no-such-rows")
    assert missing is not None and missing.status == 404
    assert "no-such-rows" in page.get_by_role("alert").inner_text()

    bad = page.goto(f"{shared_server.url}/console/audit?since=yesterday")
    assert bad is not None and bad.status == 422
    assert "From" in page.get_by_role("alert").inner_text()
    assert axe_violations(page) == []
    page.get_by_role("link", name="Last hour").click()
    page.wait_for_url(re.compile(r".*/console/audit\?since=.*"))
    assert page.locator("tbody tr").count() >= 1

    gone = page.goto(f"{shared_server.url}/console/reports/jobs/0123456789abcdef")
    assert gone is not None and gone.status == 404
    # A job the server forgot answers its poll with a last word, so the polling stops.
    page.goto(f"{shared_server.url}/console/reports/jobs/0123456789abcdef/progress")
    assert "no longer knows the job" in page.get_by_role("alert").inner_text()

    page.goto(f"{shared_server.url}/console/reports")
    page.get_by_label("From (UTC)").fill("2026-01-02T00:00")
    page.get_by_label("To (UTC)").fill("2026-01-01T00:00")
    page.get_by_role("button", name="Generate report").click()
    assert "must end after it starts" in page.get_by_role("alert").inner_text()


def test_a_person_without_the_role_sees_no_audit_pages(
    shared_server: SharedServer, page: Page
) -> None:
    engineer = person(shared_server, "ml_engineer", prefix="engineer")
    sign_in(page, shared_server, engineer)
    nav = page.get_by_role("navigation", name="Sections")
    assert nav.get_by_role("link", name="Audit log").count() == 0
    assert nav.get_by_role("link", name="Reports").count() == 0
    for path in ("/console/audit", "/console/audit/entries/1", "/console/reports"):
        answer = page.goto(f"{shared_server.url}{path}")
        assert answer is not None and answer.status == 403, path
        assert axe_violations(page) == []
    # With a valid CSRF token, the policy itself refuses generating a report.
    csrf = {c["name"]: c["value"] for c in page.context.cookies()}["warden_console_csrf"]
    refused = page.request.post(
        f"{shared_server.url}/console/reports",
        form={
            "csrf_token": csrf,
            "period_from": "2026-01-01T00:00",
            "period_to": "2026-01-02T00:00",
        },
    )
    assert refused.status == 403
    alert = re.search(r'role="alert">([^<]*)<', refused.text())
    assert alert is not None and "CSRF" not in alert.group(1), refused.text()


def _seqs(html: str) -> list[int]:
    return [int(s) for s in re.findall(r'href="/console/audit/entries/(\d+)"', html)]


def _next_page(html: str) -> str | None:
    found = re.search(r'<a href="([^"]+)" rel="next">', html)
    return found.group(1).replace("&amp;", "&") if found else None


def test_the_log_opens_on_its_newest_entries_and_pages_back_without_gaps(
    shared_server: SharedServer,
) -> None:
    auditor = person(shared_server, "auditor", prefix="auditor")
    with http_client(base_url=shared_server.url, timeout=30) as client:
        r = client.post(
            "/console/sign-in",
            data={"name": auditor.name, "password": auditor.password, "code": auditor.code()},
        )
        assert r.status_code == 303, r.text
        for _ in range(PAGE_SIZE + 5):  # each page the auditor opens is an entry in their name
            assert client.get("/console/").status_code == 200
        mine = f"/console/audit?{urllib.parse.urlencode({'actor': auditor.name})}"

        first = client.get(mine)
        assert first.status_code == 200 and "Newest first" in first.text
        newest = _seqs(first.text)
        assert len(newest) == PAGE_SIZE and newest == sorted(newest, reverse=True)
        older_url = _next_page(first.text)
        assert older_url is not None and f"before={newest[-1]}" in older_url
        older = _seqs(client.get(older_url).text)
        assert older and older == sorted(older, reverse=True) and older[0] < newest[-1]

        oldest = client.get(f"{mine}&order=oldest")
        ascending = _seqs(oldest.text)
        assert ascending == sorted(ascending)
        newer_url = _next_page(oldest.text)
        assert newer_url is not None and "order=oldest" in newer_url
        ascending += _seqs(client.get(newer_url).text)
    # Both orders list the same entries, each once (entries written since are past newest[0]).
    seen = [s for s in ascending if s <= newest[0]]
    assert seen == sorted(newest + older)
