"""The entry document an audit event becomes: canonicalised and hashed into the log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from governance.kit.events import AuditEvent

ENTRY_FORMAT = "warden.audit/1"


def to_entry(event: AuditEvent, *, seq: int, time: datetime) -> dict[str, Any]:
    """The entry document that is canonicalised and hashed into the log."""
    return {
        "format": ENTRY_FORMAT,
        "seq": seq,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S.") + f"{time.microsecond // 1000:03d}Z",
        "event_type": event.event_type,
        "action": event.action,
        "actor": event.actor.as_dict(),
        "source": {"ip": event.source.ip, "user_agent": event.source.user_agent},
        "resource": event.resource,
        "decision": event.decision,
        "reason": event.reason,
        "policy_version": event.policy_version,
        "model_version": event.model_version,
        "outcome": event.outcome,
        "request_id": event.request_id,
        "input_digest": event.input_digest,
        "output_digest": event.output_digest,
        "data_key_id": event.data_key_id,
        "details": event.details,
    }
