"""Rendering a console page: one Jinja2 environment, the layout's navigation, the CSRF token.

The navigation shows a section only to whom Casbin allows the permission of the section's
page, so nobody is shown a link that would answer 403.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from governance.api.dependencies import GATE
from governance.api.deps import Caller
from governance.console.guard import CSRF_COOKIE, CSRF_FIELD

TEMPLATES = Path(__file__).with_name("templates")


@dataclass(frozen=True)
class NavItem:
    """A section of the console, shown to whom ``enforce(person, obj, action)`` allows."""

    label: str
    path: str
    obj: str
    action: str
    group: str


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    return env


ENV = _environment()
_NAV: list[NavItem] = []


def register_nav(items: Iterable[NavItem]) -> None:
    """Add a role module's sections to the navigation (at import, once per module)."""
    for item in items:
        if item not in _NAV:
            _NAV.append(item)


def allowed_nav(request: Request, caller: Caller) -> list[NavItem]:
    """The sections this person may open, under the policy in force now."""
    compiled = GATE.get(request.app).policy.current
    return [i for i in _NAV if compiled.enforce(caller.name, i.obj, i.action).allowed]


def csrf_token(request: Request) -> str:
    """The session's CSRF token, for the forms of the page (empty before sign-in)."""
    return request.cookies.get(CSRF_COOKIE, "")


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    caller: Caller | None = None,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """A whole page, or only its ``content`` block for an htmx request (``HX-Request``)."""
    values: dict[str, Any] = {
        "caller": caller,
        "nav": allowed_nav(request, caller) if caller is not None else [],
        "csrf_field": CSRF_FIELD,
        "csrf_token": csrf_token(request),
        "path": request.url.path,
        **(context or {}),
    }
    tmpl = ENV.get_template(template)
    if request.headers.get("hx-request") == "true" and "content" in tmpl.blocks:
        ctx = tmpl.new_context(values)
        html = "".join(tmpl.blocks["content"](ctx))
    else:
        html = tmpl.render(values)
    return HTMLResponse(html, status_code=status_code, headers=dict(headers or {}))
