"""Privacy errors: accounting, training configuration, aborted runs.

An aborted run still spent privacy budget. :class:`TrainingAborted` carries the mechanism
actually run, so the ledger can charge it: the budget is never under-counted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from governance.errors import WardenError

if TYPE_CHECKING:
    from governance.privacy.accounting import Mechanism


class PrivacyError(WardenError):
    """Base of every privacy error."""

    status_code: ClassVar[int] = 500
    title: ClassVar[str] = "Privacy error"
    type_slug: ClassVar[str] = "privacy"


class AccountingError(PrivacyError):
    """A mechanism or history that cannot be accounted (bad parameters, numerical failure)."""

    status_code = 422
    title = "Privacy accounting failed"
    type_slug = "privacy-accounting"


class TrainingConfigError(PrivacyError):
    """Training parameters that are invalid or would weaken the guarantee."""

    status_code = 422
    title = "Invalid training configuration"
    type_slug = "training-config"


class SecureModeUnavailable(PrivacyError):
    """``secure_mode`` was asked for but its secure RNG (torchcsprng) is not installed.

    Fail closed: never fall back to the pseudo-random generator when a caller asked for a
    cryptographically strong guarantee.
    """

    status_code = 503
    title = "Secure mode unavailable"
    type_slug = "secure-mode-unavailable"


class TrainingAborted(PrivacyError):
    """A run failed after it began; ``mechanism`` is what it spent (charge it to the ledger).

    Args:
        message: what failed, safe to show.
        steps_done: optimizer steps that ran (each one spent budget).
        mechanism: the mechanism run so far, or None for a non-private run.
    """

    status_code = 500
    title = "Training aborted"
    type_slug = "training-aborted"

    def __init__(self, message: str, *, steps_done: int, mechanism: Mechanism | None) -> None:
        extra: dict[str, object] = {"steps_done": steps_done}
        if mechanism is not None:
            extra["mechanism"] = mechanism.to_dict()
        super().__init__(message, extra=extra)
        self.steps_done = steps_done
        self.mechanism = mechanism
