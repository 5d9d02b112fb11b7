"""Liveness and readiness: the only routes without a permission (see EXEMPT_PATHS)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from governance.api.problems import problem_schema

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process is up and serving HTTP."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: problem_schema()})
async def readyz(request: Request) -> dict[str, Any]:
    """Readiness: database reachable, policy loaded, every serving model loaded."""
    detail = await run_in_threadpool(request.app.state.runtime.check_ready)
    return {"status": "ready", **detail}
