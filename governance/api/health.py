"""Liveness and readiness: the only routes without a permission (see EXEMPT_PATHS)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from governance.api.dependencies import READINESS, JournalDep, SettingsDep
from governance.errors import ServiceUnavailable
from governance.kit.problems import problem_schema

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process is up and serving HTTP."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: problem_schema()})
async def readyz(request: Request, journal: JournalDep, settings: SettingsDep) -> dict[str, Any]:
    """Readiness: database answering, audit path working, policy and serving models loaded."""
    # Known down (the probe's verdict, a dead writer, a late or failed audit write): at once.
    problem = journal.problem(probe=True)
    if problem is not None:
        raise ServiceUnavailable(problem)
    deadline = settings.db_probe_deadline_ms / 1000.0
    # One check at a time, shared by every caller: a check stuck in a frozen database holds one
    # thread, not one per poll, and each caller waits at most the deadline for it.
    state = request.app.state
    check: asyncio.Future[dict[str, object]] | None = getattr(state, "ready_check", None)
    if check is None or check.done():
        check = asyncio.get_running_loop().run_in_executor(None, READINESS.get(request.app))
        state.ready_check = check
    try:
        detail = await asyncio.wait_for(asyncio.shield(check), deadline)
    except TimeoutError:
        raise ServiceUnavailable(
            f"the database did not answer within {deadline * 1000:.0f} ms"
        ) from None
    return {"status": "ready", **detail}
