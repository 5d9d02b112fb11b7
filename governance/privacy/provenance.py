"""What a training run writes in its manifest's ``training`` section, typed.

Field names are the JSON keys: artifacts written before this type existed read the same. The
section describes the run; it is never evidence of a DP guarantee (the ledger is).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class TrainingData:
    """The dataset a run read: its name, hashes and split sizes."""

    name: str
    content_hash: str
    file_hashes: dict[str, str]
    train_rows: int
    test_rows: int


@dataclass(frozen=True)
class TrainingRecord:
    """One run: the guarantee it targeted and reached, the mechanism, data and results.

    DP fields are ``None`` for a non-private run.
    """

    private: bool
    epsilon: float | None
    target_epsilon: float | None
    delta: float | None
    accountant: str | None
    epsilon_by_accountant: dict[str, Any] | None
    noise_multiplier: float | None
    max_grad_norm: float | None
    sample_rate: float | None
    steps: int
    epochs: int
    batch_size: int
    poisson_sampling: bool
    clipping: str | None
    privacy_unit: str
    secure_mode: bool
    grad_sample_mode: str | None
    grad_sample_mode_requested: str | None
    layer_gradient_modes: dict[str, str]
    optimizer: dict[str, Any]
    model_init_seed: int
    seed_covers: str
    mechanism_randomness: str | None
    device: str
    topology: dict[str, Any]
    dataset: TrainingData
    preprocessing: str
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    ledger_mechanism: dict[str, Any] | None
    software: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """The ``training`` section as JSON-ready data."""
        return asdict(self)
