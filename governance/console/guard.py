"""The console's guard: the API's own permission check, opened only by a person's session.

``Page("policy", "read")`` is :class:`~governance.api.deps.Authorize` with the same object and
action as the API route behind the page, so a page can never show or do more than its API
call. It differs in who may call: a session cookie only (an API key is refused, whoever holds
it), and a form's hidden ``csrf_token`` field counts as the CSRF header, so that forms work
without script.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from governance.api.dependencies import Gate
from governance.api.deps import (
    CSRF_HEADER,
    SESSION_COOKIE,
    Authorize,
    AuthorizeOwn,
    Caller,
    refuse_failing_address,
    session_identity,
)
from governance.errors import Forbidden, Unauthenticated
from governance.identity.cache import CachedIdentity
from governance.kit.middleware import header
from governance.kit.request_facts import facts_of

CSRF_FIELD = "csrf_token"
# The CSRF token of the session, kept where the server can put it into each form it renders.
CSRF_COOKIE = "warden_console_csrf"
HOME = "/console/"


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a console path, never another site."""
    if value and value.startswith(HOME) and "//" not in value and "\\" not in value:
        return value
    return HOME


class SignInRequired(Unauthenticated):
    """No session: the console answers with its sign-in page."""

    type_slug = "sign-in-required"

    def __init__(self) -> None:
        super().__init__("sign in to use the console")


class KeyRefused(Forbidden):
    """An API key sent to the console, which only a person's session opens."""

    type_slug = "console-needs-a-person"

    def __init__(self) -> None:
        super().__init__("the console opens only with a person's sign-in; API keys are for the API")


async def _person(request: Request, gate: Gate) -> CachedIdentity:
    """The signed-in person: a session cookie, never an API key."""
    refuse_failing_address(request, gate)
    if header(request.scope, b"authorization") is not None:
        facts_of(request.scope).reason = "an API key sent to the console"
        raise KeyRefused()
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id is None:
        raise SignInRequired()
    sent = header(request.scope, CSRF_HEADER)
    csrf = sent.decode("latin-1") if sent is not None else None
    if csrf is None and request.method == "POST":
        form = await request.form()
        field = form.get(CSRF_FIELD)
        csrf = field if isinstance(field, str) else None
    return await session_identity(request, gate, session_id, csrf)


class Page(Authorize):
    """Dependency: a console page or action, allowed by ``enforce(person, obj, action)``."""

    async def identify(self, request: Request, gate: Gate) -> CachedIdentity:
        return await _person(request, gate)


class OwnPage(AuthorizeOwn):
    """Dependency: a page about the person's own account (home, their sessions)."""

    async def identify(self, request: Request, gate: Gate) -> CachedIdentity:
        return await _person(request, gate)


Person = Annotated[Caller, Depends(OwnPage("read"))]
PersonActing = Annotated[Caller, Depends(OwnPage("write"))]
