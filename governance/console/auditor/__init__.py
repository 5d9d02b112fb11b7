"""The auditor's pages: the audit log and its proofs, compliance reports, the privacy ledger.

Each page asks the policy for the permission of the API call behind it (``api:audit``,
``api:reports``, ``api:privacy``) and calls the same services; proofs are checked by the
browser itself (``static/verify.js``), never taken on the server's word.
"""

from __future__ import annotations

from fastapi import APIRouter

from governance.console.auditor import ledger_pages, log_pages, report_pages
from governance.console.render import NavItem, register_nav

router = APIRouter(include_in_schema=False)
router.include_router(log_pages.router)
router.include_router(report_pages.router)
router.include_router(ledger_pages.router)

register_nav(
    [
        NavItem("Audit log", log_pages.LOG, "api:audit", "read", "Audit"),
        NavItem("Reports", report_pages.REPORTS, "api:reports", "read", "Audit"),
        NavItem("Privacy ledger", ledger_pages.LEDGER, "api:privacy", "read", "Audit"),
    ]
)
