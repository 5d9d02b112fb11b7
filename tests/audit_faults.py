"""Faults injected into the audit log's database, shared by the journal and readiness tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text


@contextmanager
def refusing_audit_writes(engine: Engine) -> Iterator[None]:
    """A trigger that fails every insert into the audit log: a write error, not a stall."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER test_refuse BEFORE INSERT ON audit_entries "
                    "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER test_refuse BEFORE INSERT ON audit_entries "
                    "FOR EACH ROW EXECUTE FUNCTION test_refuse()"
                )
            )
    try:
        yield
    finally:
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                conn.execute(text("DROP TRIGGER test_refuse"))
            else:
                conn.execute(text("DROP TRIGGER test_refuse ON audit_entries"))
                conn.execute(text("DROP FUNCTION test_refuse()"))
