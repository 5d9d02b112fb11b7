"""Whether the signed-in person may do something a page offers, under the policy in force.

A page shows a form or a section only where the action behind it would be allowed, so nobody
is offered a button that answers 403; the action's own guard still decides when it is used.
"""

from __future__ import annotations

from fastapi import Request

from governance.api.dependencies import GATE
from governance.api.deps import Caller


def may(request: Request, caller: Caller, obj: str, action: str) -> bool:
    """``enforce(person, obj, action)`` under the current policy version."""
    return GATE.get(request.app).policy.current.enforce(caller.name, obj, action).allowed
