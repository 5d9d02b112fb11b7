"""DirectStatement stores exactly what SQLAlchemy's own execution stores, in the caller's
transaction, and refuses statements it could not complete the way SQLAlchemy would."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)

from governance.db import make_engine
from governance.db.base import UTCDateTime
from governance.db.direct import DirectStatement

_META = MetaData()
PROBE = Table(
    "direct_probe",
    _META,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("at", UTCDateTime),
    Column("blob", LargeBinary),
    Column("label", String(200)),
    Column("n", BigInteger),
)
WITH_DEFAULT = Table(
    "direct_probe_default",
    _META,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("stamped", UTCDateTime, default=lambda: datetime.now(UTC)),
)
_COLUMNS = "at, blob, label, n"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    _META.create_all(engine)
    yield engine
    engine.dispose()


def _raw(engine: Engine, ids: range) -> list[tuple[Any, ...]]:
    """The stored values as the driver returns them, with no SQLAlchemy type processing."""
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            f"SELECT id, {_COLUMNS} FROM direct_probe ORDER BY id"
        ).fetchall()
    return [tuple(r[1:]) for r in rows if r[0] in ids]


def _row(i: int, **values: Any) -> dict[str, Any]:
    return {"id": i, **values}


_AT = datetime(2026, 11, 30, 15, 44, 28, 123000, tzinfo=UTC)
_SAMPLE = {"at": _AT, "blob": b"\x00\xffsealed", "label": "modèle: ünïcode", "n": 2**62}


def test_rows_are_stored_as_sqlalchemys_own_execution_stores_them(engine: Engine) -> None:
    berlin = timezone(timedelta(hours=1))
    rows = [
        _SAMPLE,
        {**_SAMPLE, "at": _AT.astimezone(berlin), "label": None},
        {**_SAMPLE, "blob": b"", "n": -1},
    ]
    with engine.begin() as connection:
        connection.execute(insert(PROBE), [_row(i, **r) for i, r in enumerate(rows)])
        DirectStatement(insert(PROBE)).executemany(
            connection, [_row(100 + i, **r) for i, r in enumerate(rows)]
        )
    assert _raw(engine, range(100, 200)) == _raw(engine, range(100))
    with engine.connect() as connection:
        typed = connection.execute(select(PROBE).where(PROBE.c.id >= 100)).all()
    assert [r.at for r in typed] == [_AT, _AT, _AT]
    assert all(r.at.tzinfo is not None for r in typed)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "at": st.none()
                | st.datetimes(
                    min_value=datetime(1970, 1, 2),
                    max_value=datetime(2200, 1, 1),
                    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7, minutes=-30))]),
                ),
                "blob": st.none() | st.binary(max_size=300),
                "label": st.none()
                | st.text(alphabet=st.characters(exclude_categories=["Cs", "Cc"]), max_size=50),
                "n": st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1),
            }
        ),
        min_size=1,
        max_size=8,
    )
)
def test_any_rows_store_the_same_bytes_both_ways(
    engine: Engine, rows: list[dict[str, Any]]
) -> None:
    counter = itertools.count(0)
    with engine.begin() as connection:
        connection.execute(PROBE.delete())
        connection.execute(insert(PROBE), [_row(next(counter), **r) for r in rows])
        start = 10_000
        DirectStatement(insert(PROBE)).executemany(
            connection, [_row(start + i, **r) for i, r in enumerate(rows)]
        )
    assert _raw(engine, range(10_000, 20_000)) == _raw(engine, range(10_000))


def test_execute_returns_rows_and_binds_the_statements_own_values(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(insert(PROBE), [_row(1, n=10), _row(2, n=20)])
    advance = DirectStatement(
        update(PROBE)
        .where(PROBE.c.id == 2)
        .values(n=PROBE.c.n + bindparam("k"))
        .returning(PROBE.c.n)
    )
    with engine.begin() as connection:
        assert advance.execute(connection, {"k": 5}) == [(25,)]
        assert advance.execute(connection, {"k": 1}) == [(26,)]
    with engine.connect() as connection:
        assert connection.execute(select(PROBE.c.id, PROBE.c.n).order_by(PROBE.c.id)).all() == [
            (1, 10),
            (2, 26),
        ]


def test_its_writes_commit_and_roll_back_with_the_callers_transaction(engine: Engine) -> None:
    statement = DirectStatement(insert(PROBE))
    with pytest.raises(RuntimeError), engine.begin() as connection:
        statement.executemany(connection, [_row(1, **_SAMPLE)])
        raise RuntimeError("the batch fails after its insert")
    with engine.begin() as connection:
        statement.executemany(connection, [_row(2, **_SAMPLE)])
    with engine.connect() as connection:
        assert connection.execute(select(PROBE.c.id)).scalars().all() == [2]


def test_statements_sqlalchemy_completes_at_execution_time_are_refused(engine: Engine) -> None:
    with engine.begin() as connection:
        # A column with a Python-side default the rows leave out: SQLAlchemy would compute it.
        with pytest.raises(TypeError, match="Python-side defaults"):
            DirectStatement(insert(WITH_DEFAULT)).executemany(connection, [{"id": 1}])
        # An IN list expanded per call.
        expanding = select(PROBE.c.id).where(PROBE.c.id.in_(bindparam("ids", expanding=True)))
        with pytest.raises(TypeError, match="expanding IN"):
            DirectStatement(expanding).execute(connection, {"ids": [1, 2]})
        assert connection.execute(select(func.count()).select_from(WITH_DEFAULT)).scalar() == 0


def test_an_empty_batch_runs_nothing(engine: Engine) -> None:
    with engine.begin() as connection:
        DirectStatement(insert(PROBE)).executemany(connection, [])
        assert connection.execute(text("SELECT count(*) FROM direct_probe")).scalar() == 0
