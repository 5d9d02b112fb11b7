"""One live server per test module, for end-to-end tests that do not need a fresh deployment.

A module opts in by asking for ``shared_server``: one migrated database per backend, one seeded
admin and one ``warden serve`` serve all of the module's tests. Tests that share it must not
depend on each other's order: they name what they create with ``shared_server.unique`` and
assert only about what they created. A test whose assertion needs a fresh server (restart,
crash, startup refusal, first-officer appointment) keeps the function-scoped ``live_server``.

``common_server`` is the same for the whole session, shared by modules of a test or two.

Under xdist a module's tests run on one worker (``--dist loadscope``), so a module starts one
server per backend however many workers run; ``common_server`` starts one per worker that
runs its tests.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from governance.config import Settings
from governance.kit.http import client as http_client
from tests.conftest import (
    BACKENDS,
    AdminToken,
    LiveServer,
    WardenFactory,
    fresh_database,
    make_settings,
    seed_admin,
)
from tests.factories import build_artifact

_counter = itertools.count()


@dataclass
class SharedServer:
    """A running ``warden serve``, its settings, its first admin and a factory bound to it."""

    server: LiveServer
    settings: Settings
    admin: AdminToken
    http: httpx.Client
    warden: WardenFactory
    folder: Path

    @property
    def url(self) -> str:
        return self.server.url

    @staticmethod
    def unique(prefix: str) -> str:
        """A name no other test of the session uses: ``unique("app")`` -> ``app-3f2a9c-7``."""
        return f"{prefix}-{uuid.uuid4().hex[:6]}-{next(_counter)}"

    def artifact(self, name: str, version: str = "1", **kw: Any) -> Path:
        """A small, valid artifact (as ``make_artifact`` builds) in the module's folder."""
        return build_artifact(
            self.folder / f"artifact-{name}-{version}-{uuid.uuid4().hex[:6]}",
            name=name,
            version=version,
            **kw,
        )


@contextmanager
def _shared(
    backend: str,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
    pg_template: str | None,
) -> Iterator[SharedServer]:
    folder = tmp_path_factory.mktemp("shared-server")
    with fresh_database(backend, folder, sqlite_template, pg_template) as url:
        settings = make_settings(url, folder)
        admin = seed_admin(settings)
        server = LiveServer(settings, folder / "server.log")
        server.start()
        try:
            with http_client(base_url=server.url, timeout=30) as http:
                yield SharedServer(
                    server, settings, admin, http, WardenFactory(http, admin), folder
                )
        finally:
            server.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def shared_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
    pg_template: str | None,
) -> Iterator[SharedServer]:
    """One server per module and backend."""
    with _shared(request.param, tmp_path_factory, sqlite_template, pg_template) as shared:
        yield shared


@pytest.fixture(scope="session", params=BACKENDS)
def common_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
    pg_template: str | None,
) -> Iterator[SharedServer]:
    """One server per backend for the session, for modules of a test or two.

    Its tests may add principals, models and rules for their own names, never change what a
    role may do: ``tests/api/test_role_matrix.py`` checks the default policy on it.
    """
    with _shared(request.param, tmp_path_factory, sqlite_template, pg_template) as shared:
        yield shared
