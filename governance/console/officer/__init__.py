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
from governance.console.render import NavItem, register_nav

router = APIRouter(prefix="/console/officer", include_in_schema=False)
for _module in (policy_pages, proposal_pages, model_pages, threshold_pages, role_pages):
    router.include_router(_module.router)

# In the order of an officer's work. Model approval and the thresholds are shown to whom may
# act on them: others read models and audits on the engineer's pages.
register_nav(
    [
        NavItem("Policy", policy_pages.POLICY, "api:policy", "read", "Compliance"),
        NavItem("Approvals", proposal_pages.QUEUE, "api:policy", "read", "Compliance"),
        NavItem("Model approval", model_pages.MODELS, "api:models", "override", "Compliance"),
        NavItem(
            "Fairness thresholds", threshold_pages.THRESHOLDS, "api:fairness", "write", "Compliance"
        ),
        NavItem("Role timeline", role_pages.ROLES, "api:roles", "read", "Compliance"),
    ]
)
