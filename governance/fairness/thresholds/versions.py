"""The live fairness thresholds: immutable, audited versions in the database.

``policies/fairness.yaml`` is only the seed: the first time any process needs the thresholds
and the table is empty, the file is validated and stored as version 1. From then on the table
is the source, so an edit made through one replica reaches the gate of every other one at its
next promotion, with no reload. Each edit stores the whole validated document, who made it,
why, and the diff from the previous version, and appends a ``fairness.thresholds`` audit event
in the same transaction.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from governance.audit import log as audit_log
from governance.fairness.errors import FairnessPolicyError, ThresholdsConflict
from governance.fairness.models import ThresholdVersion
from governance.fairness.thresholds import anchor
from governance.fairness.thresholds.bounds import FairnessPolicy, load_policy, parse_policy
from governance.kit.context import Context

POLICY_FILE: Final[str] = "fairness.yaml"
MIN_REASON_LENGTH: Final[int] = 10

logger = logging.getLogger(__name__)


def canonical_document(policy: FairnessPolicy) -> dict[str, Any]:
    """A validated policy as the plain document stored and served (per-model overrides flat).

    Args:
        policy: the validated policy.

    Returns:
        ``{"min_group_size", "defaults", "models"}``, as ``parse_policy`` accepts it back.
    """
    models: dict[str, dict[str, Any]] = {}
    for name, entry in sorted(policy.models.items()):
        flat: dict[str, Any] = {k: dict(v) for k, v in sorted(entry.get("measures", {}).items())}
        if "min_group_size" in entry:
            flat["min_group_size"] = int(entry["min_group_size"])
        models[name] = flat
    return {
        "min_group_size": policy.min_group_size,
        "defaults": {k: dict(v) for k, v in sorted(policy.defaults.items())},
        "models": models,
    }


def document_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """What changed between two documents, by dotted path.

    Args:
        before: the previous document (empty for the seed).
        after: the new document.

    Returns:
        ``{"added": {path: new}, "removed": {path: old}, "changed": {path: [old, new]}}``.
    """
    old, new = _flatten(before), _flatten(after)
    return {
        "added": {k: new[k] for k in sorted(new.keys() - old.keys())},
        "removed": {k: old[k] for k in sorted(old.keys() - new.keys())},
        "changed": {
            k: [old[k], new[k]] for k in sorted(old.keys() & new.keys()) if old[k] != new[k]
        },
    }


def _flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, f"{path}."))
        else:
            out[path] = value
    return out


def _dumps(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)


class ThresholdStore:
    """Reads and writes threshold versions; stateless."""

    def current(self, session: Session, *, policies_dir: Path | None = None) -> ThresholdVersion:
        """The latest version, seeding version 1 from ``policies/fairness.yaml`` if none exists.

        Args:
            session: the caller's transaction (a seed is written in it).
            policies_dir: where the seed file lives; default the configured policies folder.

        Returns:
            The latest threshold version.

        Raises:
            FairnessPolicyError: there is no version and the seed file is missing or invalid
                (fail closed: no thresholds is never "no gate"), or the latest version is not
                anchored in the audit log (503).
        """
        row = session.scalar(
            select(ThresholdVersion).order_by(ThresholdVersion.version.desc()).limit(1)
        )
        if row is None:
            return self._seed(session, policies_dir)
        # A version no audit entry vouches for was written around the service: fail closed.
        problem = anchor.problem(session, row)
        if problem is not None:
            logger.error("%s; the fairness thresholds are refused", problem)
            raise FairnessPolicyError(problem, status_code=503)
        return row

    def policy(self, row: ThresholdVersion) -> FairnessPolicy:
        """The validated policy of a stored version.

        Raises:
            FairnessPolicyError: the stored document no longer validates.
        """
        return parse_policy(json.loads(row.document))

    def get(self, session: Session, version: int) -> ThresholdVersion:
        """One version.

        Raises:
            FairnessPolicyError: no such version (a 500: the gate referenced it).
        """
        row = session.get(ThresholdVersion, version)
        if row is None:
            raise FairnessPolicyError(f"fairness thresholds version {version} does not exist")
        return row

    def history(self, session: Session, *, limit: int = 100) -> list[ThresholdVersion]:
        """The newest versions first."""
        query = select(ThresholdVersion).order_by(ThresholdVersion.version.desc()).limit(limit)
        return list(session.scalars(query))

    def update(
        self,
        session: Session,
        ctx: Context,
        *,
        document: Mapping[str, Any],
        reason: str,
        base_version: int | None = None,
        policies_dir: Path | None = None,
    ) -> ThresholdVersion:
        """Validate a new thresholds document and store it as the next version.

        Args:
            session: the caller's transaction.
            ctx: who edits (recorded as the author, and on the audit event).
            document: the whole new document (``policies/fairness.yaml`` shape).
            reason: why; stored and audited.
            base_version: the version the editor started from; if the current one is newer,
                the edit is refused rather than silently overwriting it.
            policies_dir: where the seed lives, if the table is still empty.

        Returns:
            The new version.

        Raises:
            FairnessPolicyError: the document does not validate (every problem listed).
            ThresholdsConflict: ``base_version`` is stale, the document changes nothing, or a
                concurrent edit took the same version number.
        """
        reason = reason.strip()
        if len(reason) < MIN_REASON_LENGTH:
            raise FairnessPolicyError(
                f"a reason of at least {MIN_REASON_LENGTH} characters is required",
                status_code=422,
            )
        try:
            policy = parse_policy(dict(document))
        except FairnessPolicyError as exc:
            # Here the document is the caller's input, not the service's configuration.
            raise FairnessPolicyError(exc.message, status_code=422, extra=exc.extra) from None
        current = self.current(session, policies_dir=policies_dir)
        if base_version is not None and base_version != current.version:
            raise ThresholdsConflict(
                f"the thresholds are at version {current.version}, not {base_version}"
            )
        before = json.loads(current.document)
        after = canonical_document(policy)
        diff = document_diff(before, after)
        if not any(diff.values()):
            raise ThresholdsConflict("the document is identical to the current version")
        return self._insert(
            session,
            ctx,
            version=current.version + 1,
            document=after,
            diff=diff,
            reason=reason,
            action="update",
        )

    def _seed(self, session: Session, policies_dir: Path | None) -> ThresholdVersion:
        if policies_dir is None:
            from governance.config import get_settings

            policies_dir = get_settings().policies_dir
        policy = load_policy(Path(policies_dir) / POLICY_FILE)
        document = canonical_document(policy)
        from governance.kit.context import cli_context

        return self._insert(
            session,
            cli_context("system"),
            version=1,
            document=document,
            diff=document_diff({}, document),
            reason=f"seeded from {POLICY_FILE}",
            action="seed",
        )

    def _insert(
        self,
        session: Session,
        ctx: Context,
        *,
        version: int,
        document: dict[str, Any],
        diff: dict[str, Any],
        reason: str,
        action: str,
    ) -> ThresholdVersion:
        row = ThresholdVersion(
            version=version,
            author=ctx.name[:64],
            author_principal_id=ctx.actor.principal_id,
            reason=reason,
            document=_dumps(document),
            diff=_dumps(diff),
        )
        try:
            # A savepoint, so that losing the race leaves the caller's transaction usable.
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:
            raise ThresholdsConflict(
                "another edit of the fairness thresholds committed first; re-read and retry"
            ) from None
        audit_log.append(
            session,
            [
                ctx.event(
                    "fairness.thresholds",
                    action,
                    resource=anchor.resource(version),
                    details={
                        "version": version,
                        "reason": reason,
                        "diff": diff,
                        "content_hash": anchor.row_hash(row),
                    },
                )
            ],
        )
        return row

    def latest_number(self, session: Session) -> int | None:
        """The current version number without seeding (None when there is none yet)."""
        return session.scalar(select(func.max(ThresholdVersion.version)))


thresholds_store = ThresholdStore()
