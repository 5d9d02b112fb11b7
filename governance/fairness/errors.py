"""Fairness errors. Messages name measures, features and counts, never row-level data.

Bad audit input (labels that are not 0/1, missing sensitive values) is a 422: the caller sent
something we cannot audit honestly. A fairness policy that does not validate is a configuration
error, found when the policy is loaded, never at gate time.
"""

from __future__ import annotations

from typing import ClassVar

from governance.errors import ConfigurationError, WardenError


class FairnessError(WardenError):
    """Base of every fairness error."""

    status_code: ClassVar[int] = 500
    title: ClassVar[str] = "Fairness error"
    type_slug: ClassVar[str] = "fairness"


class AuditInputError(FairnessError):
    """Predictions, labels or sensitive features that cannot be audited as given."""

    status_code = 422
    title = "Invalid audit input"
    type_slug = "fairness-audit-input"


class FairnessPolicyError(FairnessError, ConfigurationError):
    """A fairness policy (thresholds) that does not validate; every problem is listed at once."""

    status_code = 500
    title = "Invalid fairness policy"
    type_slug = "fairness-policy"


class MitigationError(FairnessError):
    """A post-processing spec that cannot be fitted, validated or applied."""

    status_code = 422
    title = "Mitigation failed"
    type_slug = "fairness-mitigation"
