"""Every stored row that grants power, checked against the log, and the upgrade step.

``warden audit verify`` lists each row whose anchoring entry is missing or names other content
(:func:`check_rows`). ``warden audit anchor`` (:func:`anchor_legacy`) is run once by the local
operator after upgrading a database whose rows were written before entries named content
hashes: it anchors a row only where the latest verified entry about it predates content hashes
and records the same row (the same rules digest, expiry, version or artifact). A row with no
entry at all, or whose entry names other content, is reported and never anchored by it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.audit import log as audit_log
from governance.audit.anchors import ANCHOR_EVENT, Anchor, unanchored
from governance.fairness.models import ThresholdVersion
from governance.fairness.thresholds import anchor as thresholds_anchor
from governance.identity import anchor as key_anchor
from governance.identity.models import ApiKey
from governance.kit.context import Context
from governance.policy import anchor as policy_anchor
from governance.policy.models import PolicyVersion
from governance.registry import anchor as stage_anchor
from governance.registry.models import ModelVersion


@dataclass(frozen=True)
class RowCheck:
    """One row that grants power and what the log says of it."""

    kind: str
    what: str
    resource: dict[str, Any]
    content_hash: str
    problem: str | None
    # The latest entry about it verifies, predates content hashes and records this row.
    legacy: bool


def _legacy(problem: str | None, found: Anchor | None, match: Callable[[Anchor], bool]) -> bool:
    # Only a verified entry from before content hashes, recording this very row, qualifies.
    return (
        problem is not None
        and found is not None
        and not found.fault
        and found.content_hash is None
        and found.event_type != ANCHOR_EVENT
        and match(found)
    )


def _check(
    kind: str,
    what: str,
    resource: dict[str, Any],
    expected: str,
    found: Anchor | None,
    match: Callable[[Anchor], bool],
) -> RowCheck:
    problem = unanchored(found, expected, what)
    return RowCheck(kind, what, resource, expected, problem, _legacy(problem, found, match))


def check_rows(session: Session) -> Iterator[RowCheck]:
    """Every policy version, live API key, thresholds version and model's serving stage."""
    for version in session.scalars(select(PolicyVersion).order_by(PolicyVersion.version)):
        yield _check(
            policy_anchor.KIND,
            f"policy version {version.version}",
            policy_anchor.resource(version.version),
            policy_anchor.row_hash(version),
            policy_anchor.latest(session, version),
            partial(policy_anchor.legacy_match, row=version),
        )
    live = select(ApiKey).where(ApiKey.revoked_at.is_(None)).order_by(ApiKey.id)
    for key in session.scalars(live):
        yield _check(
            key_anchor.KIND,
            f"API key {key.key_id}",
            key_anchor.resource(key.key_id),
            key_anchor.row_hash(key),
            key_anchor.latest(session, key),
            partial(key_anchor.legacy_match, row=key),
        )
    for thresholds in session.scalars(select(ThresholdVersion).order_by(ThresholdVersion.version)):
        yield _check(
            thresholds_anchor.KIND,
            f"fairness thresholds version {thresholds.version}",
            thresholds_anchor.resource(thresholds.version),
            thresholds_anchor.row_hash(thresholds),
            thresholds_anchor.latest(session, thresholds),
            partial(thresholds_anchor.legacy_match, row=thresholds),
        )
    names = list(session.scalars(select(ModelVersion.name).distinct().order_by(ModelVersion.name)))
    for name in names:
        serving = stage_anchor.serving_rows(session, name)
        current = serving[0] if len(serving) == 1 else None
        problem = stage_anchor.problem(session, name, serving)
        found = stage_anchor.latest(session, name)
        legacy = len(serving) <= 1 and _legacy(
            problem, found, partial(stage_anchor.legacy_match, serving=current)
        )
        yield RowCheck(
            stage_anchor.KIND,
            f"the serving stage of model {name}",
            stage_anchor.resource(name),
            stage_anchor.serving_hash(name, current),
            problem,
            legacy,
        )


def anchor_legacy(session: Session, ctx: Context) -> tuple[list[RowCheck], list[RowCheck]]:
    """Anchor the rows written before content hashes, each by one audited entry.

    Args:
        session: the caller's transaction; the entries commit or roll back with it.
        ctx: the local operator who vouches for the rows.

    Returns:
        ``(anchored, refused)``: the rows now anchored, and the unanchored rows left as they
        are (no entry, or an entry that records other content).
    """
    anchored: list[RowCheck] = []
    refused: list[RowCheck] = []
    for row in list(check_rows(session)):
        if row.problem is None:
            continue
        (anchored if row.legacy else refused).append(row)
    if anchored:
        audit_log.append(
            session,
            [
                ctx.event(
                    ANCHOR_EVENT,
                    "anchor",
                    resource=row.resource,
                    reason="written before audit entries named content hashes",
                    details={"kind": row.kind, "content_hash": row.content_hash},
                )
                for row in anchored
            ],
        )
    return anchored, refused
