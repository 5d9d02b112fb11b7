"""What the identity domain publishes for other domains to read: principals' standing."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from governance.identity.models import ApiKey, Principal


@dataclass(frozen=True, slots=True)
class PrincipalStanding:
    disabled: bool
    active_keys: int


def standing_of(session: Session, names: Collection[str]) -> dict[str, PrincipalStanding]:
    """Whether each named principal is disabled and how many unrevoked keys it holds.

    Names that are no principal are left out.
    """
    rows = session.execute(
        select(Principal.name, Principal.disabled, func.count(ApiKey.id))
        .outerjoin(ApiKey, (ApiKey.principal_id == Principal.id) & ApiKey.revoked_at.is_(None))
        .where(Principal.name.in_(list(names)))
        .group_by(Principal.id, Principal.name, Principal.disabled)
    )
    return {
        name: PrincipalStanding(disabled=bool(disabled), active_keys=int(count))
        for name, disabled, count in rows
    }
