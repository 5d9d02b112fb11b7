"""The governed-request middleware: request ids, body limits, and the access audit entry.

It also refuses, with a 422, any request whose path, query or JSON body holds the NUL
character (U+0000). No field of the API takes it and PostgreSQL cannot store it in text: let
through, it failed inside the database driver (a 500) on PostgreSQL and was stored on SQLite.

Every call under ``/v1`` and every console page (allowed or denied, authenticated or not) gets
an ``api.call`` audit entry, written before the response starts: the middleware holds back the
response start, appends the entry through the group-commit writer, and only then lets the
response go. If the append fails, the caller gets a 503 instead, never an unaudited answer. An
unexpected error below it (a bug) is answered here too, with the app's generic 500 problem, so
that it has its entry as well; the error then goes on to the server's handler, which logs it.
Routes that write their own entry for the call (predict writes it with the encrypted record)
mark the request audited."""

from __future__ import annotations

import json
import logging
from typing import Protocol

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from governance.errors import WardenError
from governance.kit.events import EVENT_LOG, Actor, AuditEvent, Source
from governance.kit.forwarded import PROXIES
from governance.kit.problems import TYPE_BASE, internal_error
from governance.kit.request_facts import RequestFacts, bind_facts
from governance.kit.routes import route_template
from governance.kit.security_headers import SecurityHeaders
from governance.kit.slots import Slot
from governance.logs import REQUEST_ID
from governance.randomness import sortable_hex

logger = logging.getLogger(__name__)
GOVERNED_PREFIX = "/v1"
# The console's pages are governed like the API calls behind them; its scripts and styles not.
CONSOLE_PREFIX = "/console/"
CONSOLE_ASSETS = "/console/static/"


def is_governed(path: str) -> bool:
    """Whether an answer to ``path`` is audited and never stored by a cache."""
    if path.startswith(GOVERNED_PREFIX):
        return True
    return path.startswith(CONSOLE_PREFIX) and not path.startswith(CONSOLE_ASSETS)


class BodyRefused(StarletteHTTPException):
    """Raised from the wrapped ``receive`` when the body read so far is refused.

    An HTTP exception, because FastAPI lets one through its body parsing (any other exception
    there becomes a 400 "error parsing the body") and the app's handler renders it as
    problem+json; the response is then audited like any other.
    """


_NUL_ESCAPE = b"\\u0000"  # how JSON writes U+0000 (a raw NUL byte is not JSON at all)
_NUL_DETAIL = "the request holds the NUL character (U+0000), which no field accepts"


def holds_nul_escape(body: bytes) -> bool:
    """Whether a JSON text holds ``\\u0000`` as an escape, not as an escaped backslash + text."""
    start = body.find(_NUL_ESCAPE)
    while start != -1:
        run = start
        while run > 0 and body[run - 1] == 0x5C:  # backslashes just before this one
            run -= 1
        if (start - run) % 2 == 0:  # this backslash is not itself escaped
            return True
        start = body.find(_NUL_ESCAPE, start + 1)
    return False


def _body_refused(facts: RequestFacts, status: int, detail: str) -> BodyRefused:
    facts.reason = detail  # what the audit entry says, over the guard's decision
    return BodyRefused(status, detail)


def _nul_in_target(scope: Scope) -> bool:
    # uvicorn gives the path percent-decoded; the query string is raw, where %00 is always NUL.
    return "\x00" in scope["path"] or b"%00" in scope.get("query_string", b"")


def _problem_bytes(
    status: int, title: str, detail: str, request_id: str, refusal: WardenError | None = None
) -> bytes:
    body = {
        "type": TYPE_BASE + (refusal.type_slug if refusal else f"http-{status}"),
        "title": title,
        "status": status,
        "detail": detail,
        "request_id": request_id,
    }
    body.update(refusal.extra if refusal else {})
    return json.dumps(body).encode()


class Strangers(Protocol):
    """The limit on callers that sent no valid credentials, applied to every governed answer.

    The guards that know the limits live in ``api``; the wiring point puts them in
    :data:`STRANGERS`. Without it, only the guards' own 401s are limited.
    """

    def refusal(self, scope: Scope) -> WardenError | None:
        """The 429 for a request whose address is past its limit (counted), or None."""

    async def refused(self, scope: Scope, facts: RequestFacts, status: int) -> None:
        """Count a 4xx answered to a caller that did not authenticate against its address;
        set ``facts.audited`` when a summary will count it instead of its own entry."""


STRANGERS: Slot[Strangers] = Slot("strangers")


class GovernedRequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        security_headers: SecurityHeaders,
        upload_limits: dict[str, int] | None = None,
        open_pages: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # Forms anyone may load (the console's sign-in): a GET of one is not an audited call,
        # so that loading it again and again cannot fill the log; posting it is.
        self.open_pages = open_pages
        # Paths whose bodies are binary uploads the route streams to disk: their own limit, and
        # no NUL-escape scan (which would hold the whole body in memory to look for JSON \u0000).
        self.upload_limits = dict(upload_limits or {})
        self.security_headers = security_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = sortable_hex()
        REQUEST_ID.set(request_id)  # for every log line while it is served
        facts = bind_facts(scope, request_id)
        governed = is_governed(scope["path"]) and not (
            scope["method"] == "GET" and scope["path"] in self.open_pages
        )
        upload = scope["path"] in self.upload_limits
        limit = self.upload_limits.get(scope["path"], self.max_body_bytes)
        length = header(scope, b"content-length")
        if length is not None:
            try:
                too_big = int(length) > limit
            except ValueError:
                too_big = True
            if too_big:
                await self._too_large(scope, send, facts, governed, limit)
                return
        strangers = STRANGERS.find(scope.get("app")) if governed else None
        if strangers is not None and (refusal := strangers.refusal(scope)) is not None:
            # An address past its limit of failed attempts gets nothing routed, not even a 404.
            await self._refuse(
                scope,
                send,
                facts,
                refusal.status_code,
                refusal.title,
                refusal.message,
                governed,
                refusal=refusal,
            )
            return
        if _nul_in_target(scope):
            await self._refuse(scope, send, facts, 422, "Invalid request", _NUL_DETAIL, governed)
            return

        received = 0
        parts: list[bytes] = []  # a body that came in several messages, until its last

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > limit:
                    raise _body_refused(facts, 413, self._too_large_detail(limit))
                if upload:
                    return message  # the route streams it to disk and checks its fields
                if message.get("more_body", False):
                    parts.append(chunk)
                elif holds_nul_escape(b"".join((*parts, chunk)) if parts else chunk):
                    raise _body_refused(facts, 422, _NUL_DETAIL)
            return message

        async def audited_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not facts.response_started:
                facts.response_started = True
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    *self.security_headers.for_path(scope["path"], governed),
                    (b"x-request-id", request_id.encode()),
                ]
                if message["status"] == 413:
                    # The rest of the body is unread: close, or the client sends all of it.
                    message["headers"].append((b"connection", b"close"))
                if strangers is not None and _stranger_refused(facts, message["status"]):
                    await strangers.refused(scope, facts, message["status"])
                if governed and not facts.audited:
                    ok = await self._audit(scope, facts, message["status"])
                    if not ok:
                        facts.audit_failed = True
                        await self._send_problem(
                            send,
                            503,
                            "Audit log unavailable",
                            "the request could not be audited",
                            request_id,
                        )
                        return
            if facts.audit_failed:
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, audited_send)
        except Exception:
            if facts.response_started:
                raise
            # A bug below, before any answer: the generic 500 goes out through the audited
            # path (so the call has its entry, or the caller a 503), then the error goes on
            # to the server's error handler, which logs it and, the response started, sends
            # nothing more.
            await internal_error(Request(scope))(scope, limited_receive, audited_send)
            raise

    @staticmethod
    def _too_large_detail(limit: int) -> str:
        return f"the request body exceeds {limit} bytes"

    async def _too_large(
        self, scope: Scope, send: Send, facts: RequestFacts, governed: bool, limit: int
    ) -> None:
        await self._refuse(
            scope, send, facts, 413, "Payload too large", self._too_large_detail(limit), governed
        )

    async def _refuse(
        self,
        scope: Scope,
        send: Send,
        facts: RequestFacts,
        status: int,
        title: str,
        detail: str,
        governed: bool,
        *,
        refusal: WardenError | None = None,
    ) -> None:
        if facts.reason is None:
            facts.reason = detail
        strangers = STRANGERS.find(scope.get("app")) if governed else None
        if strangers is not None and _stranger_refused(facts, status):
            await strangers.refused(scope, facts, status)
        if governed and not facts.audited and not await self._audit(scope, facts, status):
            status, title, detail = 503, "Audit log unavailable", "the request could not be audited"
            refusal = None
        await self._send_problem(send, status, title, detail, facts.request_id or "", refusal)

    async def _send_problem(
        self,
        send: Send,
        status: int,
        title: str,
        detail: str,
        request_id: str,
        refusal: WardenError | None = None,
    ) -> None:
        body = _problem_bytes(status, title, detail, request_id, refusal)
        headers = [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
            *self.security_headers.problem,
            (b"x-request-id", request_id.encode()),
        ]
        if status == 503:  # the audit log is down: the journal probes it about every second
            headers.append((b"retry-after", b"1"))
        elif (retry := getattr(refusal, "retry_after", None)) is not None:
            headers.append((b"retry-after", str(retry).encode()))
        if status == 413:  # the body is unread: close, or the client sends all of it
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _audit(self, scope: Scope, facts: RequestFacts, status: int) -> bool:
        log = EVENT_LOG.find(scope.get("app"))
        if log is None:
            return False
        event = access_event(scope, facts, status)
        try:
            await log.append([event])
        except Exception as exc:
            logger.error("access audit failed: %s", type(exc).__name__)
            return False
        return True


def _stranger_refused(facts: RequestFacts, status: int) -> bool:
    """A 4xx to a caller that did not authenticate, other than the guards' own 401 and 429
    (already counted where they were decided)."""
    return facts.actor is None and 400 <= status < 500 and status not in (401, 429)


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower case, as ASGI servers give names), or None.

    A scan of the scope's list: no dict or Headers object built per request.
    """
    for key, value in scope.get("headers") or ():
        if key == name:
            return bytes(value)
    return None


FORWARDING_HEADERS = frozenset({b"x-forwarded-for", b"forwarded"})


def source_of(scope: Scope) -> Source:
    """Where a request came from: the TCP peer, or the client a trusted proxy forwarded for.

    A forwarding header from anyone else is ignored (governance/kit/forwarded.py): uvicorn's
    own reading of it is off (``warden serve``), since it trusts 127.0.0.1 by default.
    """
    client = scope.get("client")
    ip = client[0] if client else None
    agent = b""
    forwarded = False
    for key, value in scope.get("headers") or ():  # one scan for both, as header() does
        if key == b"user-agent":
            agent = agent or bytes(value)
        elif key in FORWARDING_HEADERS:
            forwarded = True
    if forwarded and ip is not None:
        # The trusted proxies are looked up only for a request that names a client.
        proxies = PROXIES.find(scope.get("app"))
        if proxies:
            ip = proxies.client(ip, scope)
    return Source(ip=ip, user_agent=agent.decode("latin-1")[:200] or None)


def access_event(scope: Scope, facts: RequestFacts, status: int) -> AuditEvent:
    """The ``api.call`` entry for a request, from what the guards left in its facts."""
    actor = facts.actor
    decision = facts.decision
    if decision is None:
        decision = "deny" if status in (401, 403) else ("allow" if actor else "n/a")
    resource = dict(facts.resource or {})
    # The route template, never the raw path: a raw path can carry a subject id or other
    # personal data (DELETE /v1/subjects/{subject_id}).
    resource.setdefault("path", route_template(scope))
    return AuditEvent(
        event_type="api.call",
        action=f"{scope['method']} {route_template(scope)}"[:48],
        actor=actor or Actor(principal_id=None, name=None, roles=(), auth_method="none"),
        source=source_of(scope),
        resource=resource,
        decision=decision,
        reason=(facts.reason or "")[:300],
        policy_version=facts.policy_version,
        model_version=facts.model_version,
        outcome=status,
        request_id=facts.request_id,
    )
