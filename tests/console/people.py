"""People for the console's browser tests: enrolled with a password and, where their roles
need one, a TOTP second factor; signed in through the console's own form."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pyotp
from playwright.sync_api import Page

from tests.conftest import auth
from tests.console.conftest import AXE
from tests.servers import SharedServer

PASSWORD = "console correct horse battery"


@dataclass(frozen=True)
class Person:
    name: str
    password: str
    totp: pyotp.TOTP | None

    def code(self) -> str:
        return self.totp.now() if self.totp is not None else ""


def enrolment_code(shared: SharedServer, name: str) -> str:
    r = shared.http.post(f"/v1/principals/{name}/enrolment", headers=auth(shared.admin))
    assert r.status_code == 201, r.text
    return str(r.json()["code"])


def totp_of(enrolled: dict[str, object]) -> pyotp.TOTP | None:
    totp = enrolled.get("totp")
    if not isinstance(totp, dict):
        return None
    query = urllib.parse.parse_qs(urllib.parse.urlparse(str(totp["uri"])).query)
    return pyotp.TOTP(query["secret"][0])


def person(shared: SharedServer, *roles: str, prefix: str = "person") -> Person:
    """A new user principal with ``roles`` (each grant approved), enrolled with a password."""
    name = shared.unique(prefix)
    r = shared.http.post("/v1/principals", json={"name": name}, headers=auth(shared.admin))
    assert r.status_code == 201, r.text
    for role in roles:
        shared.warden.grant(name, role)
    r = shared.http.post(
        "/v1/enrol", json={"code": enrolment_code(shared, name), "password": PASSWORD}
    )
    assert r.status_code == 201, r.text
    return Person(name, PASSWORD, totp_of(dict(r.json())))


def sign_in(page: Page, shared: SharedServer, who: Person, next_path: str = "/console/") -> None:
    """Sign in through the form, as the person would, and land on ``next_path``."""
    page.goto(f"{shared.url}/console/sign-in?next={urllib.parse.quote(next_path)}")
    page.get_by_label("Name").fill(who.name)
    page.get_by_label("Password").fill(who.password)
    page.get_by_label("One-time code").fill(who.code())
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{shared.url}{next_path}")


def axe_violations(page: Page) -> list[str]:
    """axe-core's serious and critical WCAG 2.1 A/AA violations on the page as it is now."""
    # Evaluated through the DevTools protocol: the page's CSP (rightly) refuses a script tag.
    page.evaluate(f"() => {{ {Path(AXE).read_text()}\n }}")
    result = page.evaluate(
        """async () => await axe.run(document, {
            runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']},
        })"""
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + json.dumps([n["target"] for n in v["nodes"]][:3])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
