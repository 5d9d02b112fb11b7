"""Live monitoring over stored outcomes: the same audit, on the fast path, at scale."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from governance.fairness.errors import AuditInputError
from governance.fairness.feedback import derive_sensitive, group_key
from governance.fairness.metrics import audit_predictions
from governance.fairness.models import Outcome
from governance.fairness.monitoring import load_outcomes, monitor
from governance.kit.context import Context
from tests.fairness.outcomes import (
    RECEIVED,
    START,
    group_keys,
    insert_raw,
    over_a_day,
    synthetic,
)


def _insert(
    sessions: sessionmaker[Session],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    sensitive: pd.DataFrame,
    *,
    version: str = "1",
    offset: int = 0,
    at: datetime = START,
    chunk: int = 100_000,
    raw: bool = False,
) -> None:
    if raw:
        assert offset == 0 and at == START, "the raw insert writes one day from START"
        with sessions.begin() as session:
            insert_raw(session.connection(), y_true, y_pred, sensitive, version=version)
        return
    keys = group_keys(sensitive)
    times = over_a_day(len(y_true), at)
    for start in range(0, len(y_true), chunk):
        rows: list[dict[str, Any]] = [
            {
                "ref": f"{offset + i:064d}",
                "model": "live-model",
                "model_version": version,
                "predicted_at": times[i],
                "received_at": RECEIVED,
                "y_pred": int(y_pred[i]),
                "y_true": int(y_true[i]),
                "group_key": keys[i],
                "submitted_by": "app",
            }
            for i in range(start, min(start + chunk, len(y_true)))
        ]
        with sessions.begin() as session:
            session.execute(insert(Outcome), rows)


def test_monitoring_matches_metricframe_on_the_same_rows(
    sessions: sessionmaker[Session], engineer: Context
) -> None:
    y_true, y_pred, sensitive = synthetic(30_000, seed=5)
    _insert(sessions, y_true, y_pred, sensitive)
    # Another version's rows in the window, and rows before it.
    _insert(sessions, *synthetic(500, seed=6), version="2", offset=10**9)
    _insert(sessions, *synthetic(300, seed=7), offset=2 * 10**9, at=START - timedelta(days=1))
    end = START + timedelta(days=1)
    with sessions() as session:
        assert (
            len(load_outcomes(session, model="live-model", since=START, until=end).y_true) == 30_500
        )
        v1 = load_outcomes(session, model="live-model", version="1", since=START, until=end)
        assert len(v1.y_true) == 30_000
        assert (
            len(
                load_outcomes(
                    session, model="live-model", since=START - timedelta(days=1), until=START
                ).y_true
            )
            == 300
        )

    with sessions.begin() as session:
        row = monitor(
            session,
            engineer,
            model="live-model",
            sensitive=["sex", "race"],
            bootstrap=50,
            seed=3,
            since=START - timedelta(days=1),
            until=START,
        )
        assert row.kind == "live" and row.engine == "fastpath" and row.n_rows == 300
        stored = json.loads(row.result)
    rows = synthetic(300, seed=7)
    expected = audit_predictions(
        y_true=rows[0],
        y_pred=rows[1],
        sensitive=rows[2],
        bootstrap=50,
        seed=3,
        use_fast_path=False,
    ).to_dict()
    stored.pop("engine")
    expected.pop("engine")
    assert _close(stored, expected)

    # 30k rows: the fast path over stored outcomes agrees with MetricFrame on the same arrays.
    with sessions.begin() as session:
        big = json.loads(
            monitor(
                session,
                engineer,
                model="live-model",
                version=None,
                since=START,
                until=START + timedelta(days=1),
            ).result
        )
    both = pd.concat([sensitive, synthetic(500, seed=6)[2]], ignore_index=True)
    slow = audit_predictions(
        y_true=np.concatenate([y_true, synthetic(500, seed=6)[0]]),
        y_pred=np.concatenate([y_pred, synthetic(500, seed=6)[1]]),
        sensitive=both[["race", "sex"]],
        bootstrap=0,
        use_fast_path=False,
    ).to_dict()
    big.pop("engine")
    slow.pop("engine")
    assert _close(big, slow)


def _close(a: Any, b: Any, tol: float = 1e-9) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tol) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= tol
    return bool(a == b)


def test_a_window_without_outcomes_and_naive_times_are_refused(
    sessions: sessionmaker[Session], engineer: Context
) -> None:
    with pytest.raises(AuditInputError, match="no outcomes"), sessions.begin() as session:
        monitor(
            session, engineer, model="live-model", since=START, until=START + timedelta(hours=1)
        )
    with pytest.raises(AuditInputError, match="timezone"), sessions.begin() as session:
        monitor(
            session,
            engineer,
            model="live-model",
            since=datetime(2026, 1, 1),
            until=datetime(2026, 1, 2),
        )


def test_missing_attributes_form_an_explicit_unknown_group(
    sessions: sessionmaker[Session], engineer: Context
) -> None:
    rows = [
        {
            "ref": f"{i:064d}",
            "model": "m",
            "model_version": "1",
            "predicted_at": START,
            "received_at": START,
            "y_pred": i % 2,
            "y_true": (i // 2) % 2,
            "group_key": group_key({"sex": "Male"} if i % 3 else {}),
            "submitted_by": "app",
        }
        for i in range(90)
    ]
    with sessions.begin() as session:
        session.execute(insert(Outcome), rows)
        columns = load_outcomes(session, model="m", since=START, until=START + timedelta(1))
    assert sorted(columns.sensitive["sex"].unique()) == ["Male", "unknown"]


def test_sensitive_values_derive_from_the_request_as_the_dataset_bins_them() -> None:
    from governance.datasets.declaration import load_schema
    from governance.datasets.tabular import ADULT_SCHEMA

    schema = load_schema(ADULT_SCHEMA)
    assert derive_sensitive(schema, {"sex": "Female", "race": "Black", "age": 24.9}) == {
        "sex": "Female",
        "race": "Black",
        "age_group": "17-24",
    }
    assert derive_sensitive(schema, {"age": 65})["age_group"] == "65+"
    assert derive_sensitive(schema, {"age": 91}) == {}  # outside the public bins: not guessed
    assert derive_sensitive(None, {"sex": "Male"}) == {}


def test_monitoring_many_outcomes_stores_the_fast_path_audit_of_the_same_rows(
    sessions: sessionmaker[Session], engineer: Context
) -> None:
    # Its speed at a million outcomes is measured in bench/monitoring.py.
    n = 100_000
    y_true, y_pred, sensitive = synthetic(n, seed=11)
    _insert(sessions, y_true, y_pred, sensitive, raw=True)
    with sessions.begin() as session:
        row = monitor(
            session,
            engineer,
            model="live-model",
            since=START,
            until=START + timedelta(days=1),
            bootstrap=200,
        )
    assert row.n_rows == n and row.engine == "fastpath"
    expected = audit_predictions(
        y_true=y_true,
        y_pred=y_pred,
        sensitive=sensitive[["race", "sex"]],
        bootstrap=200,
        use_fast_path=True,
    ).to_dict()
    assert json.loads(row.result) == json.loads(json.dumps(expected))
