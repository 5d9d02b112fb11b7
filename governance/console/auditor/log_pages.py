"""The audit log as an auditor reads it: filtered pages, one entry with its inclusion proof,
and the consistency of two checkpoints, each proof checked in the browser.

The pages call the audit service the ``/v1/audit`` routes call, under the same permission
(``api:audit read``). The proof data goes into the page as a JSON data island; the verdict is
written by ``static/verify.js`` after it has recomputed every hash and verified the
checkpoint's Ed25519 signature with WebCrypto.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from markupsafe import Markup

from governance.api.dependencies import CheckpointerDep, GateDep
from governance.api.deps import Caller
from governance.audit.browser_proof import consistency_payload, entry_proof_payload
from governance.audit.errors import AuditNotFound, InvalidProofRequest
from governance.audit.repository import EntryFilter
from governance.audit.service import audit
from governance.audit.signing import public_vkey
from governance.console.guard import Page
from governance.console.render import render
from governance.db.base import DbBigInt
from governance.errors import WardenError
from governance.kit.transaction import SessionsDep, TransactionDep

router = APIRouter(prefix="/console", include_in_schema=False)
LOG = "/console/audit"

ReadsAudit = Annotated[Caller, Depends(Page("api:audit", "read"))]

PAGE_SIZE = 50
DECISIONS = ("allow", "deny", "n/a")
# Filter fields as the form names them; the query string is the form's, so links keep it.
_FILTERS = ("since", "until", "actor", "event_type", "decision", "model")


class _BadFilter(ValueError):
    pass


def _when(value: str, what: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _BadFilter(f"{what} is not a date and time (YYYY-MM-DDTHH:MM)") from None
    # The form's datetime-local has no offset: the page says its times are UTC.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _filter(form: dict[str, str]) -> EntryFilter:
    decision = form["decision"] or None
    if decision is not None and decision not in DECISIONS:
        raise _BadFilter(f"decision must be one of {', '.join(DECISIONS)}")
    model = form["model"]
    return EntryFilter(
        since=_when(form["since"], "From"),
        until=_when(form["until"], "Until"),
        actor=form["actor"] or None,
        event_type=form["event_type"] or None,
        decision=decision,
        # Entries about a model carry ``model=<name>`` in their resource label.
        resource=f"model={model}" if model else None,
    )


def data_island(payload: dict[str, Any]) -> Markup:
    """JSON for a ``<script type="application/json">``: nothing in it can close the element."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return Markup(text)  # noqa: S704 - escaped for the script element just above


def _label(resource: object) -> str:
    """A resource as the log's index labels it: ``k=v, k=v``."""
    if isinstance(resource, dict):
        return ", ".join(f"{k}={v}" for k, v in resource.items())
    return "" if resource is None else str(resource)


def _vkey(checkpointer: CheckpointerDep) -> str | None:
    if checkpointer is None:
        return None
    return public_vkey(checkpointer.origin, checkpointer.key)


Text = Annotated[str, Query(max_length=64)]


@router.get("/audit")
def audit_log(
    request: Request,
    caller: ReadsAudit,
    sessions: SessionsDep,
    gate: GateDep,
    since: Annotated[str, Query(max_length=40)] = "",
    until: Annotated[str, Query(max_length=40)] = "",
    actor: Text = "",
    event_type: Text = "",
    decision: Annotated[str, Query(max_length=8)] = "",
    model: Text = "",
    order: Literal["newest", "oldest"] = "newest",
    after: Annotated[DbBigInt | None, Query(ge=-1)] = None,
    before: Annotated[DbBigInt | None, Query(ge=0)] = None,
) -> Response:
    form = dict(zip(_FILTERS, (since, until, actor, event_type, decision, model), strict=True))
    newest = order == "newest"
    now = gate.clock()
    recent = {
        label: f"{LOG}?{urlencode({'since': f'{now - span:%Y-%m-%dT%H:%M:%S}'})}"
        for label, span in (("Last hour", timedelta(hours=1)), ("Last 24 hours", timedelta(days=1)))
    }
    context: dict[str, Any] = {
        "form": form,
        "decisions": DECISIONS,
        "error": None,
        "recent": recent,
        "newest": newest,
    }
    try:
        flt = _filter(form)
    except _BadFilter as exc:
        context.update(entries=[], next_url=None, paged=False, first_url=None, error=str(exc))
        return render(request, "auditor/log.html.j2", context, caller=caller, status_code=422)
    with sessions.begin() as session:
        page = audit.list_entries(
            session, flt, after=after, before=before, newest_first=newest, limit=PAGE_SIZE
        )
        entries = [
            {
                "seq": e.seq,
                "time": e.time,
                "event_type": e.event_type,
                "action": e.action,
                "actor": e.actor,
                "resource": e.resource,
                "decision": e.decision,
            }
            for e in page.entries
        ]
    kept = {k: v for k, v in form.items() if v} | ({} if newest else {"order": order})
    cursor = "before" if newest else "after"
    context.update(
        entries=entries,
        next_url=None
        if page.next_after is None
        else f"{LOG}?{urlencode({**kept, cursor: page.next_after})}",
        paged=(before if newest else after) is not None,
        first_url=f"{LOG}?{urlencode(kept)}" if kept else LOG,
    )
    return render(request, "auditor/log.html.j2", context, caller=caller)


@router.get("/audit/entries/{seq}")
def audit_entry(
    request: Request,
    seq: DbBigInt,
    caller: ReadsAudit,
    session: TransactionDep,
    checkpointer: CheckpointerDep,
) -> Response:
    vkey = _vkey(checkpointer)
    payload = entry_proof_payload(session, seq, vkey=vkey or "")
    # What the page shows is the signed document itself, the bytes the browser hashes.
    document = json.loads(payload["canonical"])
    context = {
        "seq": seq,
        "doc": document,
        "resource": _label(document.get("resource")),
        "payload": payload,
        "island": data_island(payload),
        "vkey": vkey,
        "pretty": json.dumps(document, indent=2, ensure_ascii=False),
    }
    return render(request, "auditor/entry.html.j2", context, caller=caller)


def _size(value: str, what: str) -> int | None:
    if not value.strip():
        return None
    if not value.strip().isdigit() or len(value.strip()) > 18:
        raise _BadFilter(f"{what} must be a tree size (a whole number)")
    return int(value)


@router.get("/audit/consistency")
def audit_consistency(
    request: Request,
    caller: ReadsAudit,
    session: TransactionDep,
    checkpointer: CheckpointerDep,
    first: Annotated[str, Query(max_length=20)] = "",
    second: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    earliest = next(iter(audit.checkpoints(session, limit=1)), None)
    latest = audit.latest_checkpoint(session) if earliest is not None else None
    vkey = _vkey(checkpointer)
    context: dict[str, Any] = {
        "earliest": earliest,
        "latest": latest,
        "first": first,
        "second": second,
        "payload": None,
        "island": None,
        "vkey": vkey,
        "error": None,
    }
    try:
        older, newer = _size(first, "The older tree size"), _size(second, "The newer tree size")
        if older is not None:
            payload = consistency_payload(session, vkey=vkey or "", first=older, second=newer)
            context.update(payload=payload, island=data_island(payload))
    except (_BadFilter, AuditNotFound, InvalidProofRequest) as exc:
        status = exc.status_code if isinstance(exc, WardenError) else 422
        context["error"] = exc.message if isinstance(exc, WardenError) else str(exc)
        return render(
            request, "auditor/consistency.html.j2", context, caller=caller, status_code=status
        )
    return render(request, "auditor/consistency.html.j2", context, caller=caller)
