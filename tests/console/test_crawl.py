"""Every page a person can reach by following the console's own links answers without a
server error and without anything the page's Content-Security-Policy blocks."""

from __future__ import annotations

from urllib.parse import urldefrag, urlsplit

from playwright.sync_api import Page

from tests.console.people import person, sign_in
from tests.servers import SharedServer

MOST = 80  # pages visited at the most: the links of a log or a list go on and on


def test_following_every_link_finds_no_error(shared_server: SharedServer, page: Page) -> None:
    who = person(
        shared_server, "admin", "compliance_officer", "auditor", "ml_engineer", prefix="crawler"
    )
    blocked: list[str] = []
    page.on(
        "console",
        lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None,
    )
    sign_in(page, shared_server, who)
    seen: set[str] = set()
    queue = ["/console/"]
    failed = []
    while queue and len(seen) < MOST:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        answer = page.goto(f"{shared_server.url}{path}")
        assert answer is not None
        if answer.status >= 500:
            failed.append(f"{path}: {answer.status}")
            continue
        for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
            parts = urlsplit(urldefrag(href)[0])
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            if (
                parts.netloc == urlsplit(shared_server.url).netloc
                and target.startswith("/console/")
                and "/files/" not in target
            ):
                queue.append(target)
    assert len(seen) >= 15
    assert failed == []
    assert blocked == []
    missing = page.goto(f"{shared_server.url}/console/no-such-page")
    assert missing is not None and missing.status == 404
    assert page.get_by_role("heading", level=1).inner_text() == "Not found"
