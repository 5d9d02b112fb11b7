"""Shared fixtures.

Every test gets its own database built by the Alembic migrations (copied from a template that
was migrated once per session), so the migrations are tested on every run. With
``WARDEN_TEST_POSTGRES_URL`` set (an admin URL, e.g. ``postgresql://postgres@127.0.0.1/postgres``)
every database-backed test runs on PostgreSQL as well as SQLite.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from governance.bootstrap import appoint_first_officer, create_keys, seed
from governance.cli.server_process import ServerProcess, popen_launcher
from governance.config import Settings
from governance.db import make_engine, make_sessionmaker
from governance.db.migrate import upgrade
from governance.identity.enrolment import enrolments
from governance.kit.context import cli_context

# Shared setups a module opts into by asking for their fixtures.
pytest_plugins = ["tests.shared_app", "tests.shared_db", "tests.servers"]

POSTGRES_URL = os.environ.get("WARDEN_TEST_POSTGRES_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])
REPO = Path(__file__).resolve().parent.parent
# The CLI runs over the API where the developer has signed in (`warden login`) or set
# WARDEN_SERVER: the suite's CLI tests must reach their own databases, whatever the shell holds.
os.environ.pop("WARDEN_SERVER", None)
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="warden-test-config-")


@pytest.fixture(scope="session", autouse=True)
def forked_servers() -> Iterator[None]:
    """Servers fork from a pre-imported interpreter (``WARDEN_TEST_FRESH_SERVERS=1``: do not)."""
    if os.environ.get("WARDEN_TEST_FRESH_SERVERS") == "1":
        yield
        return
    from tests.forked_servers import ForkLauncher

    launcher = ForkLauncher()
    ServerProcess.default_launcher = launcher
    try:
        yield
    finally:
        launcher.stop_all()
        ServerProcess.default_launcher = popen_launcher


def _pg_admin_url() -> str:
    assert POSTGRES_URL
    url = make_url(POSTGRES_URL)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def _pg_exec(sql: str) -> None:
    engine = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def _pg_url(dbname: str) -> str:
    return make_url(_pg_admin_url()).set(database=dbname).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "warden.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str | None]:
    if not POSTGRES_URL:
        yield None
        return
    name = f"warden_tpl_{uuid.uuid4().hex[:10]}"
    _pg_exec(f'CREATE DATABASE "{name}"')
    engine = make_engine(_pg_url(name))
    upgrade(engine)
    engine.dispose()
    yield name
    _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_database(
    backend: str, folder: Path, sqlite_template: Path, pg_template: str | None
) -> Iterator[str]:
    """A migrated, empty database copied from the session's template; dropped on exit."""
    if backend == "sqlite":
        path = folder / "warden.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    name = f"warden_t_{uuid.uuid4().hex[:12]}"
    _pg_exec(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    try:
        yield _pg_url(name)
    finally:
        _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def db_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path, pg_template: str | None
) -> Iterator[str]:
    """A freshly migrated, empty database (SQLite, and PostgreSQL when configured)."""
    with fresh_database(request.param, tmp_path, sqlite_template, pg_template) as url:
        yield url


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that reproduces ``settings`` in a subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env.update(
        WARDEN_ENVIRONMENT=settings.environment,
        WARDEN_DATA_DIR=str(settings.data_dir),
        WARDEN_DATABASE_URL=settings.resolved_database_url,
        WARDEN_MODELS_DIR=str(settings.resolved_models_dir),
        WARDEN_REPORTS_DIR=str(settings.reports_dir),
        WARDEN_STATE_POLL_SECONDS=str(settings.state_poll_seconds),
        WARDEN_STATE_NOTIFY=str(settings.state_notify).lower(),
        WARDEN_CHECKPOINT_EVERY_SECONDS=str(settings.checkpoint_every_seconds),
        WARDEN_CHECKPOINT_EVERY_ENTRIES=str(settings.checkpoint_every_entries),
        WARDEN_AUDIT_WRITE_DEADLINE_MS=str(settings.audit_write_deadline_ms),
        WARDEN_DB_PROBE_DEADLINE_MS=str(settings.db_probe_deadline_ms),
        WARDEN_DEVICE="cpu",
    )
    return env


def make_settings(db_url: str, root: Path) -> Settings:
    """Test settings over ``db_url`` with their folders and fresh keys under ``root``."""
    cfg = Settings(
        environment="test",
        data_dir=root / "data",
        database_url=db_url,
        models_dir=root / "models",
        reports_dir=root / "reports",
        state_poll_seconds=0.05,
        checkpoint_every_seconds=1.0,
        checkpoint_every_entries=100,
        device="cpu",
        # In-process apps (TestClient) write the journal in a thread: one writer process per
        # app would add a second to every test. Live servers (settings_env) run the default,
        # a writer process, as `warden serve` does.
        audit_writer="thread",
        # A test machine running several suites at once can stall a commit or a probe for
        # seconds; the deadline tests (tests/security/test_frozen_database.py) set their own.
        audit_write_deadline_ms=10_000,
        db_probe_deadline_ms=5_000,
    )
    create_keys(cfg)
    return cfg


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path)


class AdminToken(str):
    """The first admin's API key, carrying the settings of its deployment, so that a factory
    can act as the local operator (appoint the first officer, enrol people) where it must."""

    settings: Settings

    def __new__(cls, token: str, settings: Settings) -> AdminToken:
        made = super().__new__(cls, token)
        made.settings = settings
        return made


def seed_admin(settings: Settings) -> AdminToken:
    """Policy v1 seeded and the first admin created; returns the admin's API key."""
    engine = make_engine(settings.resolved_database_url)
    try:
        _, token = seed(engine, settings)
    finally:
        engine.dispose()
    return AdminToken(token, settings)


@pytest.fixture
def admin_token(settings: Settings) -> str:
    """Policy v1 seeded and the first admin created; returns the admin's API key."""
    return seed_admin(settings)


@pytest.fixture
def app_client(settings: Settings, admin_token: str) -> Iterator[Any]:
    """An in-process client over the real app, lifespan running (runtime started)."""
    from fastapi.testclient import TestClient

    from governance.api.app import create_app

    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class WardenFactory:
    """Creates principals with roles through the real API and returns their keys.

    People enrol (the local operator creates their enrolment, they redeem it over the API);
    services get keys from the admin. A role grant that needs a second person is approved by a
    compliance officer the local operator appointed first ("officer-fixture"), as in a fresh
    deployment.
    """

    BOOTSTRAP_OFFICER = "officer-fixture"

    def __init__(self, client: Any, admin_token: str) -> None:
        self.client = client
        self.admin = admin_token
        self.settings: Settings | None = getattr(admin_token, "settings", None)
        self.officer: str | None = None
        self.second_officer: str | None = None

    def principal(self, name: str, *roles: str, kind: str = "user") -> str:
        r = self.client.post(
            "/v1/principals", json={"name": name, "kind": kind}, headers=auth(self.admin)
        )
        assert r.status_code == 201, r.text
        for role in roles:
            self.grant(name, role)
        if kind == "service":
            r = self.client.post("/v1/keys", json={"principal": name}, headers=auth(self.admin))
            assert r.status_code == 201, r.text
            return str(r.json()["token"])
        return self.enrol(name)

    def grant(self, name: str, role: str, reason: str = "test setup") -> None:
        """Grant a role as the admin; a grant pending a second person is approved by the
        bootstrap officer."""
        r = self.client.post(
            "/v1/roles/grant",
            json={"principal": name, "role": role, "reason": reason},
            headers=auth(self.admin),
        )
        assert r.status_code in (200, 202), r.text
        if r.status_code == 202:
            proposal = r.json()["proposal"]
            r = self.client.post(
                f"/v1/policy/proposals/{proposal}/approve",
                json={"reason": "test setup"},
                headers=auth(self.officer_token()),
            )
            assert r.status_code == 201, r.text

    def enrol(self, name: str) -> str:
        """The person's own key: an enrolment by the local operator (or the admin, when the
        factory has no database), redeemed over the API."""
        if self.settings is None:
            r = self.client.post(f"/v1/principals/{name}/enrolment", headers=auth(self.admin))
            assert r.status_code == 201, r.text
            code = r.json()["code"]
        else:
            code = self._local(
                lambda session: enrolments.create(
                    session, cli_context("test-operator"), principal=name
                )[1]
            )
        r = self.client.post("/v1/enrol", json={"code": code})
        assert r.status_code == 201, r.text
        return str(r.json()["token"])

    def _local(self, work: Callable[[Any], str]) -> str:
        assert self.settings is not None
        engine = make_engine(self.settings.resolved_database_url)
        try:
            with make_sessionmaker(engine).begin() as session:
                return work(session)
        finally:
            engine.dispose()

    def officer_token(self) -> str:
        """The key of the first compliance officer, appointed by the local operator."""
        if self.officer is None:
            assert self.settings is not None, "appointing an officer needs the admin's settings"
            engine = make_engine(self.settings.resolved_database_url)
            try:
                code = appoint_first_officer(engine, self.settings, self.BOOTSTRAP_OFFICER)
            finally:
                engine.dispose()
            r = self.client.post("/v1/enrol", json={"code": code})
            assert r.status_code == 201, r.text
            self.officer = str(r.json()["token"])
            self._await_policy(self.officer)
        return self.officer

    def _await_policy(self, token: str) -> None:
        """Wait (bounded) until the server enforces a policy change written by the local
        operator: a live server follows the database by polling."""
        deadline = time.monotonic() + 10
        while True:
            r = self.client.get("/v1/policy", headers=auth(token))
            if r.status_code == 200 or time.monotonic() > deadline:
                assert r.status_code == 200, r.text
                return
            time.sleep(0.02)

    def policy_change(
        self, add: list[list[str]], remove: list[list[str]] | None = None, reason: str = "test"
    ) -> dict[str, Any]:
        self.officer_token()
        r = self.client.post(
            "/v1/policy/changes",
            json={"add": add, "remove": remove or [], "reason": reason},
            headers=auth(self.officer),
        )
        if r.status_code == 202:  # widens power over governance: a second officer approves
            if self.second_officer is None:
                self.second_officer = self.principal("officer-second", "compliance_officer")
            r = self.client.post(
                f"/v1/policy/proposals/{r.json()['id']}/approve",
                json={"reason": "test setup"},
                headers=auth(self.second_officer),
            )
        assert r.status_code == 201, r.text
        return dict(r.json())

    def override_gate(self, model: str, version: str) -> None:
        """A compliance officer approves a version that has no passing fairness audit (the
        toy models of these tests have no evaluation data to audit against)."""
        r = self.client.post(
            "/v1/fairness/overrides",
            json={
                "model": model,
                "version": version,
                "justification": "test fixture: synthetic model with random weights, no evaluation data; "
                "approved for exercising the serving path only",
            },
            headers=auth(self.officer_token()),
        )
        assert r.status_code == 201, r.text


def serve_toy(
    factory: WardenFactory,
    make_artifact: ArtifactBuilder,
    *,
    model: str = "toy",
    names: Callable[[str], str] = str,
) -> tuple[str, str]:
    """Register, approve and promote the toy model ``model`` 1 and let clients call it.

    Args:
        names: makes the principals' names from "eng", "app" and "nobody" (tests sharing a
            server pass ``SharedServer.unique``).

    Returns the keys of a client allowed to predict and of a principal with no role.
    """
    from tests.factories import upload_body

    http = factory.client
    engineer = factory.principal(names("eng"), "ml_engineer")
    body = upload_body(make_artifact(model, "1"))
    r = http.post("/v1/models", json=body, headers=auth(engineer))
    assert r.status_code == 201, r.text
    factory.override_gate(model, "1")
    r = http.post(f"/v1/models/{model}/versions/1/promote", headers=auth(factory.admin))
    assert r.status_code == 200, r.text
    factory.policy_change(
        [["g2", f"model:{model}", "group:default-models"]],
        reason=f"{model} may be called by clients",
    )
    client = factory.principal(names("app"), "client", kind="service")
    stranger = factory.principal(names("nobody"), kind="service")
    return client, stranger


@pytest.fixture
def warden(app_client: Any, admin_token: str) -> WardenFactory:
    return WardenFactory(app_client, admin_token)


class LiveServer(ServerProcess):
    """A real ``warden serve`` subprocess on a free port, configured like ``settings``."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        super().__init__(settings_env(settings), log_path)
        self.settings = settings

    def writer_pid(self) -> int:
        """The pid of the server's journal writer process (its child running the sidecar)."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if ppid == self.pid and b"governance.audit.journal.sidecar" in cmdline:
                return int(entry.name)
        raise AssertionError("the server has no journal writer process")


@pytest.fixture
def live_server(settings: Settings, admin_token: str, tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(settings, tmp_path / "server.log")
    server.start()
    yield server
    server.stop()


ArtifactBuilder = Callable[..., Path]


@pytest.fixture
def make_artifact(tmp_path: Path) -> ArtifactBuilder:
    """Builds a small, valid artifact (random weights, seeded) with a tabular schema."""
    from tests.factories import build_artifact

    def _make(name: str = "toy", version: str = "1", **kw: Any) -> Path:
        return build_artifact(
            tmp_path / f"artifact-{name}-{version}", name=name, version=version, **kw
        )

    return _make
