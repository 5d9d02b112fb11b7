"""Who acted, from where, and what happened: the event every domain builds for the audit log.

An event never holds plaintext payloads or secrets: inputs and outputs appear as keyed
HMAC-SHA256 digests, data subjects as blind-index references.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from governance.kit.slots import Slot


@dataclass(frozen=True)
class Actor:
    principal_id: int | None
    name: str | None
    roles: tuple[str, ...] = ()
    auth_method: str = "api_key"

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled into every journal frame: positional fields, not copyreg's generic state.
        return (Actor, (self.principal_id, self.name, self.roles, self.auth_method))

    def as_dict(self) -> dict[str, Any]:
        return {
            "principal_id": self.principal_id,
            "name": self.name,
            "roles": list(self.roles),
            "auth_method": self.auth_method,
        }


SYSTEM = Actor(principal_id=None, name="system", roles=(), auth_method="local")


@dataclass(frozen=True)
class Source:
    ip: str | None = None
    user_agent: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (Source, (self.ip, self.user_agent))


@dataclass(frozen=True)
class AuditEvent:
    """One thing that happened, before the log gives it a sequence number and a time.

    ``event_type`` names the domain event (``api.call``, ``policy.change``, ``key.issue`` ...);
    ``action`` the verb within it; ``details`` holds event-specific, JSON-safe, non-secret data.
    """

    event_type: str
    action: str
    actor: Actor = SYSTEM
    source: Source = field(default_factory=Source)
    resource: dict[str, Any] = field(default_factory=dict)
    decision: str = "n/a"
    reason: str = ""
    policy_version: int | None = None
    model_version: str | None = None
    outcome: int | None = None
    request_id: str | None = None
    input_digest: str | None = None
    output_digest: str | None = None
    data_key_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __reduce__(self) -> tuple[Any, ...]:
        # The journal pickles every event on the event loop: positional fields, rather than
        # copyreg's generic reduction with a state dict (tests/audit/journal/test_wire.py checks the
        # round trip).
        return (
            AuditEvent,
            (
                self.event_type,
                self.action,
                self.actor,
                self.source,
                self.resource,
                self.decision,
                self.reason,
                self.policy_version,
                self.model_version,
                self.outcome,
                self.request_id,
                self.input_digest,
                self.output_digest,
                self.data_key_id,
                self.details,
            ),
        )


class EventLog(Protocol):
    """Where the governed-request middleware appends each call's ``api.call`` entry."""

    async def append(self, events: Sequence[AuditEvent], /) -> list[int]: ...


# The app's audit journal, put there by the wiring point.
EVENT_LOG: Slot[EventLog] = Slot("event_log")
