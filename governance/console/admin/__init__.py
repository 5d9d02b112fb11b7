"""The admin's pages: principals and enrolments, service keys, role grants, key rotation; and
the enrolment page a person opens without a session to redeem their one-time code."""

from __future__ import annotations

from fastapi import APIRouter

from governance.console.admin import enrol, keys, principals, roles, vault
from governance.console.render import NavItem, register_nav

# Each page module carries the /console prefix itself, so that a walk over the included
# routers (governance/kit/routes.py) sees the same paths that are served.
router = APIRouter(include_in_schema=False)
for _module in (enrol, principals, keys, roles, vault):
    router.include_router(_module.router)

register_nav(
    [
        NavItem("Principals", principals.PATH, "api:principals", "read", "Admin"),
        NavItem("Service keys", keys.PATH, "api:keys", "read", "Admin"),
        NavItem("Role grants", roles.PATH, "api:roles", "read", "Admin"),
        NavItem("Key rotation", vault.PATH, "api:vault", "read", "Admin"),
    ]
)

__all__ = ["router"]
