"""The compliance officer's pages: the policy and its changes, the approval queue, models
awaiting approval, fairness thresholds and the role timeline."""

from __future__ import annotations

from fastapi import APIRouter

from governance.console.officer import (
    model_pages,
    policy_pages,
    proposal_pages,
    role_pages,
    threshold_pages,
)

router = APIRouter(prefix="/console/officer", include_in_schema=False)
for _module in (policy_pages, proposal_pages, model_pages, threshold_pages, role_pages):
    router.include_router(_module.router)
