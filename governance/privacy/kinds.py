"""The names of what training can build and how, and the bounds of a run's options: shared by
the trainer, its service, its API and the CLI.

Kept apart from :mod:`governance.privacy.training` so that the service and the schemas can
name them without importing Opacus.
"""

from __future__ import annotations

from typing import Literal

ModelKind = Literal["mlp", "logreg"]
GradSampleMode = Literal["ghost", "hooks"]

# Bounds shared by the API's schema and the CLI's options, so that the two accept the same.
EPOCHS_MAX = 1000
SEED_MAX = 2**63 - 1
