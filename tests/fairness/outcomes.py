"""Synthetic ground-truth outcomes for live monitoring, written as the feedback route stores them;
shared by tests/fairness/test_monitoring.py and bench/monitoring.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection

from governance.fairness.feedback import group_key

START = datetime(2026, 3, 1, tzinfo=UTC)
MODEL = "live-model"
# Outcomes arrive two days after the window they describe.
RECEIVED = START + timedelta(days=2)

_INSERT = (
    "INSERT INTO fairness_outcomes (ref, model, model_version, predicted_at, received_at, "
    "y_pred, y_true, group_key, submitted_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Labels, predictions biased by sex, and two sensitive features (six groups)."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(np.array(["Female", "Male"], dtype=object), n, p=[0.4, 0.6])
    race = rng.choice(np.array(["Black", "White", "Other"], dtype=object), n, p=[0.15, 0.8, 0.05])
    y_true = (rng.random(n) < 0.25).astype(np.int8)
    y_pred = (rng.random(n) < np.where(sex == "Male", 0.3, 0.15) + 0.4 * y_true).astype(np.int8)
    return y_true, y_pred, pd.DataFrame({"sex": sex, "race": race})


def group_keys(sensitive: pd.DataFrame) -> list[str]:
    """Each row's stored group key."""
    keys = {
        (s, r): group_key({"sex": s, "race": r})
        for s in sensitive["sex"].unique()
        for r in sensitive["race"].unique()
    }
    return [keys[pair] for pair in zip(sensitive["sex"], sensitive["race"], strict=True)]


def over_a_day(n: int, at: datetime = START) -> list[datetime]:
    """``n`` prediction times in order over the day from ``at``, as outcomes arrive."""
    minutes = np.arange(n) * (24 * 60) // max(n, 1)
    return [at + timedelta(minutes=int(m)) for m in minutes]


def insert_raw(
    connection: Connection,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    sensitive: pd.DataFrame,
    *,
    version: str = "1",
) -> None:
    """Rows over one day from START through the driver's executemany (the ORM takes a minute
    for a million)."""
    sqlite = connection.dialect.name == "sqlite"
    # SQLite stores what SQLAlchemy's DateTime writes: naive UTC text with microseconds.
    stamp: Any = (lambda t: t.strftime("%Y-%m-%d %H:%M:%S.%f")) if sqlite else (lambda t: t)
    received = stamp(RECEIVED)
    rows = zip(over_a_day(len(y_true)), y_pred, y_true, group_keys(sensitive), strict=True)
    connection.connection.cursor().executemany(
        _INSERT if sqlite else _INSERT.replace("?", "%s"),
        [
            (f"{i:064d}", MODEL, version, stamp(t), received, int(p), int(y), key, "app")
            for i, (t, p, y, key) in enumerate(rows)
        ],
    )
