"""One in-process app per test module, for tests that do not need a fresh deployment.

A module opts in by asking for ``shared_app``: one migrated database per backend, one seeded
admin and one running app (TestClient with its lifespan) serve all of the module's tests.
Tests that share it must not depend on each other's order: they name what they create with
``unique`` and assert only about what they created.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from governance.config import Settings
from tests.conftest import (
    BACKENDS,
    AdminToken,
    WardenFactory,
    fresh_database,
    make_settings,
    seed_admin,
)
from tests.factories import build_artifact


@dataclass
class SharedApp:
    """A running in-process app, its settings, its first admin and a factory bound to it."""

    client: Any
    settings: Settings
    admin: AdminToken
    warden: WardenFactory
    folder: Path

    def artifact(self, name: str, version: str = "1", **kw: Any) -> Path:
        """A small, valid artifact (as ``make_artifact`` builds) in the module's folder."""
        return build_artifact(
            self.folder / f"artifact-{name}-{version}-{uuid.uuid4().hex[:6]}",
            name=name,
            version=version,
            **kw,
        )


@pytest.fixture(scope="module", params=BACKENDS)
def shared_app(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
    pg_template: str | None,
) -> Iterator[SharedApp]:
    from fastapi.testclient import TestClient

    from governance.api.app import create_app

    folder = tmp_path_factory.mktemp("shared-app")
    with fresh_database(request.param, folder, sqlite_template, pg_template) as url:
        settings = make_settings(url, folder)
        admin = seed_admin(settings)
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            yield SharedApp(client, settings, admin, WardenFactory(client, admin), folder)


_counter = itertools.count()


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Names no other test of the session uses: ``unique("app")`` -> ``app-3f2a9c-7``."""
    tag = uuid.uuid4().hex[:6]

    def name(prefix: str) -> str:
        return f"{prefix}-{tag}-{next(_counter)}"

    return name
