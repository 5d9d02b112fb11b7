"""Privacy: DP-SGD training (Opacus, PRV accountant), accounting over runs, model cards."""

from governance.privacy.accounting import (
    Mechanism,
    compose_epsilon,
    naive_sum_epsilon,
    noise_for_epsilon,
    plan_noise,
)
from governance.privacy.errors import (
    AccountingError,
    PrivacyError,
    SecureModeUnavailable,
    TrainingAborted,
    TrainingConfigError,
)
from governance.privacy.model_card import build_model_card, render_model_card
from governance.privacy.training import TrainResult, train

__all__ = [
    "AccountingError",
    "Mechanism",
    "PrivacyError",
    "SecureModeUnavailable",
    "TrainResult",
    "TrainingAborted",
    "TrainingConfigError",
    "build_model_card",
    "compose_epsilon",
    "naive_sum_epsilon",
    "noise_for_epsilon",
    "plan_noise",
    "render_model_card",
    "train",
]
