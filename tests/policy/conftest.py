"""Fixtures of the policy tests: compliance officers, and direct reads of what was stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from governance.audit.models import AuditEntry
from governance.config import Settings
from governance.db import make_engine, make_sessionmaker
from governance.policy.models import PolicyVersion
from tests.conftest import WardenFactory, auth
from tests.shared_app import SharedApp


def flat(text: str) -> str:
    """CLI output with Rich's line wrapping undone."""
    return " ".join(text.split())


@dataclass(frozen=True)
class Officers:
    """Two compliance officers (for separation of duties) and the admin."""

    olivia: dict[str, str]
    oscar: dict[str, str]
    admin: dict[str, str]


@pytest.fixture
def officers(warden: WardenFactory, admin_token: str) -> Officers:
    return Officers(
        olivia=auth(warden.principal("olivia", "compliance_officer")),
        oscar=auth(warden.principal("oscar", "compliance_officer")),
        admin=auth(admin_token),
    )


class Store:
    """Reads the database behind the app, the way an auditor would."""

    def __init__(self, settings: Settings) -> None:
        self.engine = make_engine(settings.resolved_database_url)
        self.sessions = make_sessionmaker(self.engine)

    def head(self) -> tuple[int, str]:
        """(current version, its sha256)."""
        with self.sessions() as session:
            row = session.scalar(
                select(PolicyVersion).order_by(PolicyVersion.version.desc()).limit(1)
            )
            assert row is not None
            return row.version, row.sha256

    def versions(self) -> int:
        with self.sessions() as session:
            return len(list(session.scalars(select(PolicyVersion.version))))

    def entries(self, event_type: str) -> list[dict[str, Any]]:
        """Audit entries of one type, as their canonical documents, in log order."""
        with self.sessions() as session:
            rows = session.scalars(
                select(AuditEntry.canonical)
                .where(AuditEntry.event_type == event_type)
                .order_by(AuditEntry.seq)
            )
            return [json.loads(r) for r in rows]

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = Store(settings)
    yield s
    s.close()


@pytest.fixture(scope="module")
def shared_officers(shared_app: SharedApp) -> Officers:
    """``officers`` in the module's shared app."""
    warden = shared_app.warden
    return Officers(
        olivia=auth(warden.principal("olivia", "compliance_officer")),
        oscar=auth(warden.principal("oscar", "compliance_officer")),
        admin=auth(shared_app.admin),
    )


@pytest.fixture(scope="module")
def shared_store(shared_app: SharedApp) -> Iterator[Store]:
    """``store`` over the module's shared app."""
    s = Store(shared_app.settings)
    yield s
    s.close()
