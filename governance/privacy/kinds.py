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
# Data-parallel replicas of one run; each is a process holding the whole training set.
WORKERS_MAX = 64
SEED_MAX = 2**63 - 1

# How a run drew its DP mechanism's noise and Poisson sampling, as its manifest records it.
# Only these keep the guarantee: an artifact without one (trained when the noise came from the
# user's recorded seed) carries a void DP claim until it is retrained.
OS_ENTROPY = "os-entropy"  # torch generators seeded with 64 secret bits, never recorded
SECURE_RNG = "torchcsprng"  # Opacus secure_mode
SECRET_RANDOMNESS = (OS_ENTROPY, SECURE_RNG)
