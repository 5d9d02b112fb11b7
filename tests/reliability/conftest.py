"""Helpers of the reliability suite (marked ``reliability``; it runs in CI)."""

from __future__ import annotations

from pathlib import Path

import httpx

from governance.audit.signing import load_signing_key, public_vkey
from governance.audit.verify import LogReport, verify_log
from governance.config import Settings
from governance.db import make_engine, make_sessionmaker
from tests.conftest import WardenFactory, auth
from tests.factories import upload_body


def serve_toy(http: httpx.Client, admin: str, artifact: Path) -> tuple[WardenFactory, str]:
    """Register, approve and serve the toy model; return the factory and a client key."""
    factory = WardenFactory(http, admin)
    engineer = factory.principal("eng", "ml_engineer")
    r = http.post("/v1/models", json=upload_body(artifact), headers=auth(engineer))
    assert r.status_code == 201, r.text
    factory.override_gate("toy", "1")
    r = http.post("/v1/models/toy/versions/1/promote", headers=auth(admin))
    assert r.status_code == 200, r.text
    factory.policy_change([["g2", "model:toy", "group:default-models"]])
    return factory, factory.principal("app", "client", kind="service")


def verify(settings: Settings) -> LogReport:
    """Verify the whole stored log with the deployment's own public key."""
    key = public_vkey(settings.log_origin, load_signing_key(settings.resolved_signing_key_file))
    engine = make_engine(settings.resolved_database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return verify_log(session, key)
    finally:
        engine.dispose()


def logged_request_ids(settings: Settings) -> set[str]:
    from sqlalchemy import select

    from governance.audit.models import AuditEntry

    engine = make_engine(settings.resolved_database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return {r for r in session.scalars(select(AuditEntry.request_id)) if r}
    finally:
        engine.dispose()
