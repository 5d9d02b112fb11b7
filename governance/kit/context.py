"""Who is acting, from where, in which request: passed from the API or CLI into services.

Services use it to stamp the audit events they append, so every domain records actors the same
way and none of them needs to know about HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from governance.kit.events import SYSTEM, Actor, AuditEvent, Source


@dataclass(frozen=True)
class Context:
    actor: Actor = SYSTEM
    source: Source = field(default_factory=Source)
    request_id: str | None = None
    policy_version: int | None = None

    @property
    def name(self) -> str:
        return self.actor.name or "system"

    def event(self, event_type: str, action: str, **fields: Any) -> AuditEvent:
        """An audit event attributed to this context (decision defaults to allow)."""
        fields.setdefault("decision", "allow")
        fields.setdefault("policy_version", self.policy_version)
        return AuditEvent(
            event_type=event_type,
            action=action,
            actor=self.actor,
            source=self.source,
            request_id=self.request_id,
            **fields,
        )


def cli_context(operator: str = "cli") -> Context:
    """The context of a local operator command (trusted: it holds the key file)."""
    return Context(actor=Actor(principal_id=None, name=operator, roles=(), auth_method="local"))
