"""The names of what training can build and how: shared by the trainer, its service and its API.

Kept apart from :mod:`governance.privacy.training` so that the service and the schemas can
name them without importing Opacus.
"""

from __future__ import annotations

from typing import Literal

ModelKind = Literal["mlp", "logreg"]
GradSampleMode = Literal["ghost", "hooks"]
