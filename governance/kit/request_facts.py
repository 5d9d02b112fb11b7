"""What one HTTP request has established about itself, as it goes: one typed object per request.

The governed-request middleware binds it when a request arrives; guards, routes and the server
protocol fill it in; the middleware reads it back to write the call's ``api.call`` audit entry.
It lives in the ASGI scope under one key, so whatever wraps the app (any ASGI middleware) or
is wrapped by it sees the same object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.types import Scope

from governance.kit.events import Actor

SCOPE_KEY = "warden.request_facts"


@dataclass(slots=True)
class RequestFacts:
    """One request's facts; ``None`` where nothing has been established yet."""

    request_id: str | None = None
    # The template of the route a guard ran for (never the raw path: it can hold personal data).
    route: str | None = None
    actor: Actor | None = None  # the authenticated caller, as audit entries name it
    decision: str | None = None
    reason: str | None = None
    resource: dict[str, Any] | None = None
    policy_version: int | None = None
    model_version: str | None = None
    # The route wrote the call's audit entry itself (predict), or a summary will count it.
    audited: bool = False
    audit_failed: bool = False
    response_started: bool = False


def bind_facts(scope: Scope, request_id: str | None = None) -> RequestFacts:
    """Start a request's facts in its scope, replacing any there."""
    facts = RequestFacts(request_id=request_id)
    scope[SCOPE_KEY] = facts
    return facts


def facts_of(scope: Scope) -> RequestFacts:
    """The request's facts; fresh ones for a request that came in past the middleware."""
    facts = scope.get(SCOPE_KEY)
    if isinstance(facts, RequestFacts):
        return facts
    return bind_facts(scope)
