"""The retention policy for stored records (``policies/retention.yaml``).

Records are kept for a global period or a per-model one. Audit entries are never purged with
them; they are kept at least ``audit.min_days`` (183 by default, EU AI Act Art. 19 and 26(6)),
a value reports quote. An invalid file is refused with every problem listed, never guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from governance.records.errors import RetentionPolicyError

__all__ = ["AUDIT_MIN_DAYS_FLOOR", "RETENTION_FILE", "RetentionPolicy", "load_retention"]

RETENTION_FILE = "retention.yaml"
RETENTION_FORMAT = "warden.retention/1"
# EU AI Act Art. 19(1) and 26(6): logs kept for at least six months.
AUDIT_MIN_DAYS_FLOOR = 183


@dataclass(frozen=True)
class RetentionPolicy:
    """Record retention periods in days (None: kept until erased) and the audit minimum."""

    default_days: int | None
    model_days: dict[str, int | None] = field(default_factory=dict)
    audit_min_days: int = AUDIT_MIN_DAYS_FLOOR

    def days_for(self, model: str) -> int | None:
        """The retention period of a model's records."""
        return self.model_days.get(model, self.default_days)

    def cutoff(self, model: str, *, now: datetime) -> datetime | None:
        """Records of ``model`` created before this are expired (None: never)."""
        days = self.days_for(model)
        return None if days is None else now - timedelta(days=days)

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": {"default_days": self.default_days, "models": dict(self.model_days)},
            "audit": {"min_days": self.audit_min_days, "purged_with_records": False},
        }


def load_retention(policies_dir: Path) -> RetentionPolicy:
    """Read and validate ``<policies_dir>/retention.yaml``.

    Args:
        policies_dir: the folder holding the policy files.

    Returns:
        The policy.

    Raises:
        RetentionPolicyError: the file is missing, not YAML, or invalid (all problems listed).
    """
    path = policies_dir / RETENTION_FILE
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RetentionPolicyError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError:
        raise RetentionPolicyError(f"{path} is not valid YAML") from None
    problems: list[str] = []
    if not isinstance(doc, dict):
        raise RetentionPolicyError(f"{path} must be a mapping")
    if doc.get("format") != RETENTION_FORMAT:
        problems.append(f"'format' must be {RETENTION_FORMAT!r}")
    records = doc.get("records")
    if not isinstance(records, dict):
        problems.append("'records' must be a mapping")
        records = {}
    default_days = _days(records.get("default_days"), "records.default_days", problems)
    models_raw = records.get("models") or {}
    model_days: dict[str, int | None] = {}
    if not isinstance(models_raw, dict):
        problems.append("'records.models' must be a mapping of model name to days")
    else:
        for name, value in models_raw.items():
            if not isinstance(name, str) or not name:
                problems.append("'records.models' keys must be model names")
                continue
            model_days[name] = _days(value, f"records.models.{name[:64]}", problems)
    audit = doc.get("audit") or {}
    min_days = audit.get("min_days", AUDIT_MIN_DAYS_FLOOR) if isinstance(audit, dict) else None
    if not isinstance(min_days, int) or isinstance(min_days, bool):
        problems.append("'audit.min_days' must be a whole number of days")
        min_days = AUDIT_MIN_DAYS_FLOOR
    elif min_days < AUDIT_MIN_DAYS_FLOOR:
        problems.append(
            f"'audit.min_days' must be at least {AUDIT_MIN_DAYS_FLOOR} (EU AI Act Art. 19, 26(6))"
        )
    if problems:
        raise RetentionPolicyError(f"{path} is invalid: {'; '.join(problems)}")
    return RetentionPolicy(
        default_days=default_days, model_days=model_days, audit_min_days=min_days
    )


def _days(value: object, where: str, problems: list[str]) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        problems.append(f"'{where}' must be a whole number of days >= 1, or null")
        return None
    return value
