"""The console's routes: its assets, signing in, and each role's pages where present."""

from __future__ import annotations

from fastapi import APIRouter

from governance.console import assets, cli_login, session_pages
from governance.plugins import optional_module

# Each module exposes ``router`` and registers its sections with render.register_nav.
PAGES = ("officer", "auditor", "admin", "engineer")
# Reached without a session: the sign-in form, the files every page loads, and the enrolment
# form (governance/console/admin/enrol.py), where the one-time code is the proof.
OPEN_PATHS = frozenset({session_pages.SIGN_IN, assets.ROUTE, "/console/enrol"})
# The forms among them, whose GET is not audited (governance/kit/middleware.py).
OPEN_PAGES = frozenset(p for p in OPEN_PATHS if not p.startswith(assets.PREFIX))


def console_router() -> APIRouter:
    router = APIRouter()
    router.include_router(assets.router)
    router.include_router(session_pages.router)
    router.include_router(cli_login.router)
    for name in PAGES:
        module = optional_module(f"governance.console.{name}")
        if module is not None:
            router.include_router(module.router)
    return router
