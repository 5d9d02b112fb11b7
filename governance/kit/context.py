"""Who is acting, from where, in which request: passed from the API or CLI into services.

Services use it to stamp the audit events they append, so every domain records actors the same
way and none of them needs to know about HTTP.
"""

from __future__ import annotations

import getpass
import os
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


def local_operator() -> str:
    """``local:<OS user>``: who acts in direct database mode, named by the operating system."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        # A container user with no passwd entry and no LOGNAME: its uid still names it.
        user = f"uid-{os.getuid()}"
    return f"local:{user}"


def cli_context(operator: str | None = None) -> Context:
    """The context of a direct database command (trusted: it holds the key file), acting as
    ``operator`` or, by default, the local operator."""
    name = operator or local_operator()
    return Context(actor=Actor(principal_id=None, name=name, roles=(), auth_method="local"))
