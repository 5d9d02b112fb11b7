"""Privacy: DP-SGD training (Opacus, PRV accountant), accounting over runs, model cards.

The names below load on first use (PEP 562): importing a submodule such as
``governance.privacy.ledger`` or ``governance.privacy.errors`` must not import Opacus and
pandas, which would add seconds to every server start and CLI command.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from governance.privacy.accounting import (
        Mechanism,
        Tightest,
        compose_epsilon,
        naive_sum_epsilon,
        noise_for_epsilon,
        plan_noise,
        tightest_epsilon,
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

_WHERE = {
    "Mechanism": "accounting",
    "compose_epsilon": "accounting",
    "naive_sum_epsilon": "accounting",
    "noise_for_epsilon": "accounting",
    "plan_noise": "accounting",
    "Tightest": "accounting",
    "tightest_epsilon": "accounting",
    "AccountingError": "errors",
    "PrivacyError": "errors",
    "SecureModeUnavailable": "errors",
    "TrainingAborted": "errors",
    "TrainingConfigError": "errors",
    "build_model_card": "model_card",
    "render_model_card": "model_card",
    "TrainResult": "training",
    "train": "training",
}

__all__ = [
    "AccountingError",
    "Mechanism",
    "PrivacyError",
    "SecureModeUnavailable",
    "Tightest",
    "TrainResult",
    "TrainingAborted",
    "TrainingConfigError",
    "build_model_card",
    "compose_epsilon",
    "naive_sum_epsilon",
    "noise_for_epsilon",
    "plan_noise",
    "render_model_card",
    "tightest_epsilon",
    "train",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
