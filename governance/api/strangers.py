"""``failed_auth`` applied to every answer a caller without valid credentials gets.

The guards count their own 401s. Unknown routes, and bodies refused before any guard ran (a
malformed body on the enrolment route, a NUL, an oversized body), would otherwise let an
address write audit entries without limit; the governed-request middleware hands each such
answer here (``kit.middleware.STRANGERS``). A request that carries a valid key is not a
stranger's: its refusals stay one audit entry each.
"""

from __future__ import annotations

from fastapi.concurrency import run_in_threadpool
from starlette.types import Scope

from governance.api.dependencies import GATE, Gate
from governance.api.deps import _ANONYMOUS, _lookup, _summarised, _too_many_failures
from governance.db.base import utcnow
from governance.errors import WardenError
from governance.identity.tokens import token_hash, well_formed
from governance.kit.middleware import header, source_of
from governance.kit.request_facts import RequestFacts, facts_of
from governance.limits import address_subject


class AddressLimit:
    """What the middleware asks before routing and after a refusal (kit.middleware.Strangers)."""

    def refusal(self, scope: Scope) -> WardenError | None:
        gate = GATE.find(scope.get("app"))
        if gate is None or not gate.limits.failed_auth.watching:
            return None
        source = source_of(scope)
        address = address_subject(source.ip)
        wait = gate.limits.failed_auth.over(address)
        if wait is None:
            return None
        return _too_many_failures(gate, facts_of(scope), address, source, wait)

    async def refused(self, scope: Scope, facts: RequestFacts, status: int) -> None:
        gate = GATE.find(scope.get("app"))
        if gate is None or await _holds_a_valid_key(gate, scope):
            return
        window = gate.limits.failed_auth
        source = source_of(scope)
        address = address_subject(source.ip)
        await run_in_threadpool(window.take_shared, address)
        _summarised(gate, facts, window, address, status=status, actor=_ANONYMOUS, source=source)


async def _holds_a_valid_key(gate: Gate, scope: Scope) -> bool:
    # Only on a refusal: a cache hit, else one lookup (bounded like authentication's).
    value = header(scope, b"authorization") or b""
    scheme, _, token = value.decode("latin-1").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not well_formed(token):
        return False
    hashed = token_hash(token)
    ident = gate.auth_cache.get(hashed)
    if ident is None:
        try:
            ident = await run_in_threadpool(_lookup, gate, hashed)
        except Exception:
            return False
    return ident is not None and (ident.expires_at is None or ident.expires_at > utcnow())
