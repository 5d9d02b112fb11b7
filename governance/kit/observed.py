"""The observed-request middleware: request metrics, the access log, the request span's facts.

It wraps the governed-request middleware, so it sees every answer as the client gets it, a
503 for an audit write that failed included. What a request established about itself (its
principal, decision, policy version, model) is read from its :class:`RequestFacts` once the
answer is out. Routes are named by their template, never by the raw path.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from governance.kit import metrics, tracing
from governance.kit.request_facts import RequestFacts, facts_of
from governance.kit.routes import route_template
from governance.logs import ACCESS_LOGGER, REQUEST_ID

access = logging.getLogger(ACCESS_LOGGER)
# Probes and scrapes come every few seconds from machines: their access lines go at DEBUG.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def decision_of(facts: RequestFacts, status: int) -> str:
    """``allow``, ``deny`` or ``error`` (the server failed), or ``none`` where no permission
    was checked (health probes, a body refused before its guard ran)."""
    if status >= 500:
        return "error"
    if facts.decision == "deny" or status in (401, 403, 429):
        return "deny"
    if facts.decision == "allow":
        return "allow"
    return "none"


class ObservedRequestMiddleware:
    def __init__(self, app: ASGIApp, *, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers for an app that raised before answering

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if tracing.enabled():
                    # Now: the request's span ends with the answer's last byte.
                    _annotate(scope, status)
            await send(message)

        # The governed-request middleware sets the id it draws; reset here, after the access line.
        token = REQUEST_ID.set(None)
        try:
            await self.app(scope, receive, observed_send)
        finally:
            self._observe(scope, status, time.perf_counter() - started)
            REQUEST_ID.reset(token)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        facts = facts_of(scope)
        route = route_template(scope)
        method = scope["method"]
        decision = decision_of(facts, status)
        metrics.count_request(route, method, status, decision, seconds)
        if not self.access_log:
            return
        level = logging.DEBUG if scope["path"] in QUIET_PATHS else logging.INFO
        if not access.isEnabledFor(level):
            return
        principal = facts.actor.name if facts.actor is not None else None
        latency_ms = round(seconds * 1000, 3)
        # A record made here, not through access.log(): that walks the stack for the caller's
        # file and line, which an access line does not need, on every request.
        record = access.makeRecord(
            ACCESS_LOGGER,
            level,
            "",
            0,
            "%s %s %d %s %.1fms principal=%s request=%s",
            (
                method,
                route,
                status,
                decision,
                latency_ms,
                principal or "-",
                facts.request_id or "-",
            ),
            None,
            extra={
                "request_id": facts.request_id,
                "method": method,
                "route": route,
                "status": status,
                "principal": principal,
                "decision": decision,
                "latency_ms": latency_ms,
                "policy_version": facts.policy_version,
            },
        )
        access.handle(record)


def _annotate(scope: Scope, status: int) -> None:
    facts = facts_of(scope)
    tracing.annotate(
        scope,
        {
            "warden.decision": decision_of(facts, status),
            "warden.policy_version": facts.policy_version,
            "warden.model": (facts.resource or {}).get("model"),
            "warden.model_version": facts.model_version,
            "warden.request_id": facts.request_id,
        },
    )
