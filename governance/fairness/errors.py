"""Fairness errors. Messages name measures, features and counts, never row-level data.

Bad audit input (labels that are not 0/1, missing sensitive values) is a 422: the caller sent
something we cannot audit honestly. A fairness policy that does not validate is a configuration
error, found when the policy is loaded, never at gate time.
"""

from __future__ import annotations

from typing import ClassVar

from governance.errors import ConfigurationError, RefusedByRule, WardenError


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


class NotTabular(AuditInputError):
    """The model takes a tensor, not named features: no sensitive attribute reaches it."""

    type_slug = "fairness-not-tabular"
    title = "Model has no tabular features"

    def __init__(self, model: str, version: str) -> None:
        super().__init__(
            f"{model} {version} takes a tensor input, not named features: a bias audit or a "
            "threshold mitigation needs the sensitive attributes among the model's inputs. "
            "It can pass the fairness gate only by a compliance officer's override "
            "(POST /v1/fairness/overrides, docs/models.md)"
        )


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


class AuditNotFound(FairnessError):
    """No such fairness audit."""

    status_code = 404
    title = "Fairness audit not found"
    type_slug = "fairness-audit-not-found"


class UnknownDataset(FairnessError):
    """The dataset named for an audit or a mitigation is not known here."""

    status_code = 404
    title = "Unknown dataset"
    type_slug = "fairness-unknown-dataset"


class GateRefused(FairnessError, RefusedByRule):
    """Promotion refused: no passing audit of this exact artifact and no override.

    ``extra["failures"]`` names each failing measure (feature, measure, value, limit).
    """

    status_code = 409
    title = "Fairness gate refused the promotion"
    type_slug = "fairness-gate"


class OverrideRefused(FairnessError):
    """An override that must not be recorded: the version already passes, or a bad request."""

    status_code = 409
    title = "Override refused"
    type_slug = "fairness-override-refused"


class SeparationOfDuties(FairnessError):
    """Whoever trained or registered a model may not approve it."""

    status_code = 403
    title = "Separation of duties"
    type_slug = "fairness-separation-of-duties"


class ThresholdsConflict(FairnessError):
    """Another edit of the thresholds committed first; re-read and retry."""

    status_code = 409
    title = "Thresholds changed meanwhile"
    type_slug = "fairness-thresholds-conflict"


class AuditConflict(FairnessError):
    """What an audit or a mitigation computed from changed while it computed (nothing stored)."""

    status_code = 409
    title = "Inputs changed during the computation"
    type_slug = "fairness-inputs-changed"


class PredictionNotFound(FairnessError):
    """No stored prediction with that request id for this caller."""

    status_code = 404
    title = "Prediction not found"
    type_slug = "fairness-prediction-not-found"


class FeedbackRefused(FairnessError):
    """Feedback that cannot be recorded as given (duplicate, bad label, unknown attribute)."""

    status_code = 422
    title = "Feedback refused"
    type_slug = "fairness-feedback"


class DuplicateFeedback(FeedbackRefused):
    """That prediction already has its outcome."""

    status_code = 409
    title = "Outcome already recorded"
    type_slug = "fairness-feedback-duplicate"
