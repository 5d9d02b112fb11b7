"""Impact analysis: replay recently audited requests against a proposed policy (a dry run).

Every ``/v1`` request leaves an ``api.call`` audit entry naming the caller and the permission it
needed (``resource.object`` and ``resource.action``). Each distinct (caller, object, action) of
the last N days is decided twice, under the current version and under the candidate, and the
differences are reported: who would gain or lose access to what, how many recent requests that
touches, and examples. Nothing is written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.audit.models import AuditEntry
from governance.db.base import utcnow
from governance.policy.engine import CompiledPolicy
from governance.policy.errors import InvalidPolicy
from governance.policy.rules import Vocabulary, diff, load_rules
from governance.policy.service import policy
from governance.policy.testcases import compile_candidate

ACCESS_EVENT = "api.call"


@dataclass
class _Seen:
    requests: int = 0
    last_seen: str = ""


@dataclass(frozen=True)
class AccessChange:
    """One (principal, object, action) whose decision the change flips."""

    principal: str
    object: str
    action: str
    requests: int
    last_seen: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "object": self.object,
            "action": self.action,
            "requests": self.requests,
            "last_seen": self.last_seen,
        }


@dataclass
class ImpactReport:
    """What a change would do to the requests of the window."""

    current_version: int
    days: int
    since: datetime
    entries_scanned: int
    truncated: bool
    skipped: int
    distinct_requests: int
    gained: list[AccessChange] = field(default_factory=list)
    lost: list[AccessChange] = field(default_factory=list)

    def summary(self, *, examples: int) -> dict[str, Any]:
        """The JSON-safe report, with at most ``examples`` examples per principal."""
        return {
            "current_version": self.current_version,
            "days": self.days,
            "since": self.since.isoformat(),
            "entries_scanned": self.entries_scanned,
            "truncated": self.truncated,
            "skipped_entries": self.skipped,
            "distinct_requests": self.distinct_requests,
            "gained": _by_principal(self.gained, examples),
            "lost": _by_principal(self.lost, examples),
            "totals": {
                "principals_gaining": len({c.principal for c in self.gained}),
                "principals_losing": len({c.principal for c in self.lost}),
                "requests_gaining": sum(c.requests for c in self.gained),
                "requests_losing": sum(c.requests for c in self.lost),
            },
        }


def _by_principal(changes: list[AccessChange], examples: int) -> list[dict[str, Any]]:
    groups: dict[str, list[AccessChange]] = {}
    for change in changes:
        groups.setdefault(change.principal, []).append(change)
    out: list[dict[str, Any]] = []
    for principal, items in groups.items():
        items.sort(key=lambda c: (-c.requests, c.object, c.action))
        out.append(
            {
                "principal": principal,
                "requests": sum(c.requests for c in items),
                "permissions": len(items),
                "examples": [c.as_dict() for c in items[:examples]],
            }
        )
    out.sort(key=lambda g: (-g["requests"], g["principal"]))
    return out


def request_of(canonical: str) -> tuple[str, str, str] | None:
    """(caller, object, action) of an ``api.call`` entry, or None when it names none.

    The guard records the permission it checked as ``resource.object``/``resource.action``.
    A served prediction is written by the predict path with ``resource.model`` and the
    entry's ``action`` "predict" instead; it was authorized as ``model:<name>`` "predict".
    """
    try:
        entry = json.loads(canonical)
        name = entry["actor"]["name"]
        resource = entry["resource"]
        obj, action = resource.get("object"), resource.get("action")
        if obj is None and entry.get("action") == "predict" and resource.get("model"):
            obj, action = f"model:{resource['model']}", "predict"
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if not all(isinstance(v, str) and v for v in (name, obj, action)):
        return None
    return name, obj, action


def recent_requests(
    session: Session, *, since: datetime, max_entries: int
) -> tuple[dict[tuple[str, str, str], _Seen], int, int, bool]:
    """Distinct authenticated requests audited since ``since``, newest entries first.

    Returns:
        ``(requests with counts, entries scanned, entries skipped, truncated)``; unauthenticated
        calls and entries without a permission check are skipped.
    """
    query = (
        select(AuditEntry.canonical, AuditEntry.time)
        .where(AuditEntry.event_type == ACCESS_EVENT, AuditEntry.time >= since)
        .order_by(AuditEntry.seq.desc())
        .limit(max_entries + 1)
        .execution_options(yield_per=2000)
    )
    seen: dict[tuple[str, str, str], _Seen] = {}
    scanned = skipped = 0
    truncated = False
    for canonical, time in session.execute(query):
        if scanned == max_entries:
            truncated = True
            break
        scanned += 1
        request = request_of(canonical)
        if request is None:
            skipped += 1
            continue
        hit = seen.get(request)
        if hit is None:
            # Entries arrive newest first: the first one seen is the most recent.
            hit = seen[request] = _Seen(last_seen=time.isoformat())
        hit.requests += 1
    return seen, scanned, skipped, truncated


def analyze(
    session: Session,
    *,
    before: CompiledPolicy,
    after: CompiledPolicy,
    days: int,
    max_entries: int = 200_000,
) -> ImpactReport:
    """Compare two compiled policies over the audited requests of the last ``days`` days.

    Args:
        session: a read-only session.
        before: the current version, compiled.
        after: the candidate, compiled.
        days: the window (whole days back from now).
        max_entries: stop after this many entries (the newest); the report says so.

    Returns:
        The report; ``gained`` and ``lost`` are sorted by request count.
    """
    since = utcnow() - timedelta(days=days)
    seen, scanned, skipped, truncated = recent_requests(
        session, since=since, max_entries=max_entries
    )
    report = ImpactReport(
        current_version=before.version,
        days=days,
        since=since,
        entries_scanned=scanned,
        truncated=truncated,
        skipped=skipped,
        distinct_requests=len(seen),
    )
    for (principal, obj, action), hit in seen.items():
        was = before.enforce(principal, obj, action).allowed
        will = after.enforce(principal, obj, action).allowed
        if was == will:
            continue
        change = AccessChange(principal, obj, action, hit.requests, hit.last_seen)
        (report.gained if will else report.lost).append(change)
    report.gained.sort(key=lambda c: (-c.requests, c.principal, c.object, c.action))
    report.lost.sort(key=lambda c: (-c.requests, c.principal, c.object, c.action))
    return report


def dry_run(
    session: Session,
    *,
    vocab: Vocabulary,
    days: int,
    add: Sequence[Any] = (),
    remove: Sequence[Any] = (),
    to_version: int | None = None,
    max_entries: int = 200_000,
) -> tuple[ImpactReport, dict[str, list[list[str]]]]:
    """Validate a change (or a rollback to ``to_version``) and analyse its impact.

    Both versions are compiled afresh, never the server's live policy: replaying thousands of
    requests through it would evict hot decisions from its cache and contend with its callers.

    Returns:
        ``(the report, the rule diff the change would make)``.

    Raises:
        InvalidPolicy: a malformed change, or both a change and ``to_version``.
        PolicyNotFound, PolicyConflict: see :meth:`PolicyService.plan_rollback`.
    """
    if to_version is not None and (add or remove):
        raise InvalidPolicy("give either rules to add and remove, or a version to roll back to")
    if to_version is not None:
        row, before, after = policy.plan_rollback(session, to_version=to_version, vocab=vocab)
    else:
        row, before, after = policy.propose(session, add=add, remove=remove, vocab=vocab)
    current = compile_candidate(version=row.version, rules=load_rules(row.rules), vocab=vocab)
    candidate = compile_candidate(version=row.version + 1, rules=after, vocab=vocab)
    report = analyze(session, before=current, after=candidate, days=days, max_entries=max_entries)
    return report, diff(before, after)
