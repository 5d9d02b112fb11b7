"""Access review data: who held which role, from when to when, granted and revoked by whom.

Computed from the policy history alone (each version's stored diff), so it is exactly as
trustworthy as that history: versions are append-only and every one is in the audit log.
Only direct grants (``g, <principal>, role:<name>``) are listed; a role that inherits another
(``g, role:a, role:b``) is listed with ``member_kind`` "role".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.policy.models import PolicyVersion


@dataclass
class RoleHolding:
    """One uninterrupted period in which ``member`` held ``role`` directly."""

    member: str
    role: str
    granted_at: datetime
    granted_in_version: int
    granted_by: str
    grant_approved_by: str | None
    grant_reason: str
    revoked_at: datetime | None = None
    revoked_in_version: int | None = None
    revoked_by: str | None = None
    revoke_approved_by: str | None = None
    revoke_reason: str | None = None

    @property
    def member_kind(self) -> str:
        return "role" if self.member.startswith("role:") else "principal"

    def as_dict(self) -> dict[str, Any]:
        return {
            "member": self.member,
            "member_kind": self.member_kind,
            "role": self.role.removeprefix("role:"),
            "granted_at": self.granted_at,
            "granted_in_version": self.granted_in_version,
            "granted_by": self.granted_by,
            "grant_approved_by": self.grant_approved_by,
            "grant_reason": self.grant_reason,
            "revoked_at": self.revoked_at,
            "revoked_in_version": self.revoked_in_version,
            "revoked_by": self.revoked_by,
            "revoke_approved_by": self.revoke_approved_by,
            "revoke_reason": self.revoke_reason,
        }


def role_timeline(
    session: Session,
    *,
    member: str | None = None,
    role: str | None = None,
    include_roles: bool = False,
) -> list[RoleHolding]:
    """Every period of role membership over the whole history, oldest grant first.

    Args:
        member: only this principal (or ``role:<name>``).
        role: only this role (with or without the ``role:`` prefix).
        include_roles: also list role-to-role inheritance.

    Returns:
        Closed periods have ``revoked_*`` set; open ones (held today) do not.
    """
    wanted_role = None if role is None else f"role:{role.removeprefix('role:')}"
    query = select(
        PolicyVersion.version,
        PolicyVersion.created_at,
        PolicyVersion.author,
        PolicyVersion.approved_by,
        PolicyVersion.reason,
        PolicyVersion.diff,
    ).order_by(PolicyVersion.version)
    open_: dict[tuple[str, str], RoleHolding] = {}
    periods: list[RoleHolding] = []
    for version, created_at, author, approved_by, reason, diff_text in session.execute(query):
        change = json.loads(diff_text)
        for values in change.get("removed", []):
            if values[0] != "g":
                continue
            held = open_.pop((values[1], values[2]), None)
            if held is not None:
                held.revoked_at, held.revoked_in_version = created_at, version
                held.revoked_by, held.revoke_approved_by = author, approved_by
                held.revoke_reason = reason
        for values in change.get("added", []):
            if values[0] != "g":
                continue
            key = (values[1], values[2])
            if key in open_:
                continue
            holding = RoleHolding(
                member=key[0],
                role=key[1],
                granted_at=created_at,
                granted_in_version=version,
                granted_by=author,
                grant_approved_by=approved_by,
                grant_reason=reason,
            )
            open_[key] = holding
            periods.append(holding)
    return [
        p
        for p in periods
        if (include_roles or p.member_kind == "principal")
        and (member is None or p.member == member)
        and (wanted_role is None or p.role == wanted_role)
    ]
