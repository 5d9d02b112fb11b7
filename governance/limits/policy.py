"""The rate limits of a deployment (``policies/limits.yaml``).

Three limits, each a number of requests per window of seconds:

- ``failed_auth``: per client address, the requests answered 401 (no key, a malformed, unknown,
  revoked or expired key). Past it the address is answered 429 before its key is looked at.
- ``predict``: per principal, its prediction calls.
- ``jobs``: per principal, the heavy jobs named in ``jobs.actions`` (training, fairness audits
  and mitigation, reports, audit export and verification), as ``"<object> <action>"`` pairs of
  the permission each route declares.

An invalid file is refused with every problem listed, never guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from governance.limits.errors import LimitsPolicyError

__all__ = ["LIMITS_FILE", "Limit", "LimitsPolicy", "load_limits"]

LIMITS_FILE = "limits.yaml"
LIMITS_FORMAT = "warden.limits/1"
# A window longer than a day would keep counters (and an attacker's block) for days.
MAX_WINDOW_SECONDS = 86_400
MAX_REQUESTS = 10_000_000


@dataclass(frozen=True)
class Limit:
    """At most ``requests`` per ``per_seconds`` (a sliding window over fixed windows)."""

    requests: int
    per_seconds: int


@dataclass(frozen=True)
class LimitsPolicy:
    failed_auth: Limit
    predict: Limit
    jobs: Limit
    job_actions: frozenset[tuple[str, str]]


def load_limits(policies_dir: Path) -> LimitsPolicy:
    """Read and validate ``<policies_dir>/limits.yaml``.

    Args:
        policies_dir: the folder holding the policy files.

    Returns:
        The limits.

    Raises:
        LimitsPolicyError: the file is missing, not YAML, or invalid (all problems listed).
    """
    path = policies_dir / LIMITS_FILE
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LimitsPolicyError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise LimitsPolicyError(f"{path} is not UTF-8 text") from None
    except yaml.YAMLError:
        raise LimitsPolicyError(f"{path} is not valid YAML") from None
    if not isinstance(doc, dict):
        raise LimitsPolicyError(f"{path} must be a mapping")
    problems: list[str] = []
    if doc.get("format") != LIMITS_FORMAT:
        problems.append(f"'format' must be {LIMITS_FORMAT!r}")
    unknown = sorted(
        str(k)[:32] for k in doc if k not in {"format", "failed_auth", "predict", "jobs"}
    )
    if unknown:
        problems.append(f"unknown keys {unknown}")
    failed_auth = _limit(doc.get("failed_auth"), "failed_auth", problems)
    predict = _limit(doc.get("predict"), "predict", problems)
    jobs_doc = doc.get("jobs")
    jobs = _limit(jobs_doc, "jobs", problems, extra={"actions"})
    actions = _actions(jobs_doc.get("actions") if isinstance(jobs_doc, dict) else None, problems)
    if problems:
        raise LimitsPolicyError(f"{path} is invalid: {'; '.join(problems)}")
    return LimitsPolicy(failed_auth=failed_auth, predict=predict, jobs=jobs, job_actions=actions)


def _whole(value: object, where: str, low: int, high: int, problems: list[str]) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        problems.append(f"'{where}' must be a whole number from {low} to {high}")
        return low
    return value


def _limit(
    doc: object, where: str, problems: list[str], *, extra: frozenset[str] | set[str] = frozenset()
) -> Limit:
    if not isinstance(doc, dict):
        problems.append(f"'{where}' must be a mapping with 'requests' and 'per_seconds'")
        return Limit(1, 1)
    unknown = sorted(str(k)[:32] for k in doc if k not in {"requests", "per_seconds", *extra})
    if unknown:
        problems.append(f"'{where}' has unknown keys {unknown}")
    return Limit(
        requests=_whole(doc.get("requests"), f"{where}.requests", 1, MAX_REQUESTS, problems),
        per_seconds=_whole(
            doc.get("per_seconds"), f"{where}.per_seconds", 1, MAX_WINDOW_SECONDS, problems
        ),
    )


def _actions(value: Any, problems: list[str]) -> frozenset[tuple[str, str]]:
    if not isinstance(value, list) or not value:
        problems.append("'jobs.actions' must be a non-empty list of '<object> <action>'")
        return frozenset()
    pairs: set[tuple[str, str]] = set()
    for item in value:
        parts = item.split() if isinstance(item, str) else []
        if len(parts) != 2:
            problems.append(f"'jobs.actions' item {str(item)[:64]!r} is not '<object> <action>'")
            continue
        pairs.add((parts[0], parts[1]))
    return frozenset(pairs)
