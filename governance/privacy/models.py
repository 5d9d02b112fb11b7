"""The privacy-budget ledger: one row per training run that touched a dataset.

A row is written ``reserved`` (charging the planned mechanism) and committed BEFORE training
starts, then completed with the mechanism actually run. A crash in between leaves the planned
budget charged: the ledger fails closed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from governance.db.base import Base, utcnow
from governance.privacy.accounting import Mechanism

RESERVED = "reserved"
COMPLETED = "completed"
ABORTED = "aborted"
# Refused by the trainer before any step ran (invalid configuration): nothing was spent.
FAILED = "failed"
STATUSES = (RESERVED, COMPLETED, ABORTED, FAILED)


class TrainingRun(Base):
    __tablename__ = "privacy_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    dataset_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=RESERVED)
    private: Mapped[bool] = mapped_column(Boolean)
    target_epsilon: Mapped[float | None] = mapped_column(Float)
    delta: Mapped[float | None] = mapped_column(Float)
    planned_noise_multiplier: Mapped[float | None] = mapped_column(Float)
    planned_sample_rate: Mapped[float | None] = mapped_column(Float)
    planned_steps: Mapped[int | None] = mapped_column(BigInteger)
    noise_multiplier: Mapped[float | None] = mapped_column(Float)
    sample_rate: Mapped[float | None] = mapped_column(Float)
    steps: Mapped[int | None] = mapped_column(BigInteger)
    epsilon: Mapped[float | None] = mapped_column(Float)
    model_kind: Mapped[str] = mapped_column(String(16))
    epochs: Mapped[int] = mapped_column(Integer)
    batch_size: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(64))
    artifact_sha256: Mapped[str | None] = mapped_column(String(64))
    registered: Mapped[bool] = mapped_column(Boolean, default=False)
    test_accuracy: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    started_by: Mapped[str] = mapped_column(String(64))
    # A zero-charge run (a mitigation fitted on public rows): the public dataset it read.
    fit_dataset: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()

    @property
    def charged(self) -> Mechanism | None:
        """The mechanism this run charges to its dataset (None: a non-private run)."""
        if self.noise_multiplier is None or self.sample_rate is None or self.steps is None:
            return None
        return Mechanism(self.noise_multiplier, self.sample_rate, int(self.steps))
