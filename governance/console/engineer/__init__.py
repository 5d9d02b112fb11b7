"""The ML engineer's pages: datasets with their privacy budget, training runs with progress,
models and their stages, bias audits with their metrics against the thresholds."""

from __future__ import annotations

from fastapi import APIRouter

from governance.console.engineer import audits, catalog
from governance.console.render import NavItem, register_nav

# Each page module carries the /console prefix itself, so that a walk over the included
# routers (governance/kit/routes.py) sees the same paths that are served.
router = APIRouter(include_in_schema=False)
for _module in (catalog, audits):
    router.include_router(_module.router)

register_nav(
    [
        NavItem("Datasets", catalog.DATASETS, "api:datasets", "read", "ML engineering"),
        NavItem("Training runs", catalog.RUNS, "api:training", "read", "ML engineering"),
        NavItem("Model registry", catalog.MODELS, "api:models", "list", "ML engineering"),
        NavItem("Bias audits", audits.PATH, "api:fairness", "read", "ML engineering"),
    ]
)

__all__ = ["router"]
