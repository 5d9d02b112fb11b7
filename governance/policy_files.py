"""The policy files a deployment cannot run without, checked before anything relies on them.

``policies/default_policy.yaml`` (roles, actions, the seed rules), ``policies/retention.yaml``
and ``policies/limits.yaml`` (rate limits) are configuration: a broken one stops ``warden
init`` before it writes anything and ``warden serve`` before it serves, with the file's
problems named, rather than surfacing in the first request that needs it.
"""

from __future__ import annotations

from pathlib import Path

from governance.errors import ConfigurationError
from governance.limits.errors import LimitsPolicyError
from governance.limits.policy import load_limits
from governance.policy.errors import PolicyFileError
from governance.policy.service import default_policy
from governance.records.errors import RetentionPolicyError
from governance.records.retention import load_retention


def check_policy_files(policies_dir: Path, *, refusing: str) -> None:
    """Read and validate the files.

    Args:
        policies_dir: the folder holding them.
        refusing: what is refused if one is broken ("start", "initialize").

    Raises:
        ConfigurationError: a file is missing, unreadable or invalid.
    """
    try:
        default_policy(policies_dir)
        load_retention(policies_dir)
        load_limits(policies_dir)
    except (PolicyFileError, RetentionPolicyError, LimitsPolicyError) as exc:
        raise ConfigurationError(f"{exc.message}; refusing to {refusing}") from None
