"""A frozen or unreachable database answers 503 fast, never a hung request (issue 25, item 8).

The attack: whoever can pause the database host (SIGSTOP, a frozen VM, a held lock) or cut it
off wants every request to hang, holding the server's connections and threads, until the
database returns, and then be answered as if nothing happened. A stopped PostgreSQL enforces
no statement timeout and its kernel still acknowledges every packet and keepalive, so only a
deadline in Warden notices. Expected: the first requests are refused (503 problem+json,
Retry-After) within the audit-write deadline, the following ones and /readyz at once, and the
service recovers by itself; every answer 200 is in the log, and a refused request whose entry
committed late is named by an ``audit.deadline`` entry.

The database is a private PostgreSQL cluster of the test's own (initdb, pg_ctl), so that its
processes can be stopped; skipped without WARDEN_TEST_POSTGRES_URL or the binaries.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from governance.audit.models import AuditEntry
from governance.bootstrap import create_keys, seed
from governance.cli.server_process import free_port
from governance.config import Settings
from governance.db import make_engine
from governance.db.engine import ConnectionLimits
from governance.db.health import DatabaseMonitor
from governance.db.migrate import upgrade
from governance.kit.http import client as http_client
from tests.conftest import POSTGRES_URL, AdminToken, ArtifactBuilder, LiveServer, auth
from tests.factories import toy_record
from tests.reliability.conftest import serve_toy, verify

pytestmark = pytest.mark.reliability

_PG_BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass
class Cluster:
    """A private PostgreSQL cluster: its data directory, port and postmaster."""

    data: Path
    port: int
    run_as: list[str]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/warden"

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.run_as, str(_PG_BIN / "pg_ctl"), "-D", str(self.data), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.pg_ctl("-o", options, "-l", str(self.data / "log"), "-w", "start")

    def pids(self) -> list[int]:
        """The postmaster first, then every process it started."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == postmaster:
                children.append(int(entry.name))
        return [postmaster, *children]

    def signal_all(self, sig: signal.Signals) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                os.kill(pid, sig)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if not POSTGRES_URL:
        pytest.skip("needs WARDEN_TEST_POSTGRES_URL (a PostgreSQL installation)")
    if not (_PG_BIN / "initdb").exists():
        pytest.skip(f"needs PostgreSQL's binaries in {_PG_BIN}")
    run_as: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="warden-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: its own user does
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(base)
            pytest.skip("running as root and there is no postgres user")
        os.chown(base, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data = base / "data"
    subprocess.run(
        [*run_as, str(_PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    found = Cluster(data, free_port(), run_as)
    found.start()
    try:
        admin = create_engine(
            f"postgresql+psycopg://postgres@127.0.0.1:{found.port}/postgres",
            isolation_level="AUTOCOMMIT",
        )
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE warden"))
        admin.dispose()
        yield found
    finally:
        found.signal_all(signal.SIGCONT)
        subprocess.run(
            [*run_as, str(_PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
            timeout=60,
        )
        shutil.rmtree(base, ignore_errors=True)


# Short deadlines, so the test is quick; the defaults are 2000 ms, 1000 ms and 0.5 s.
_FAST = {
    "WARDEN_AUDIT_WRITE_DEADLINE_MS": "600",
    "WARDEN_DB_PROBE_DEADLINE_MS": "300",
    "WARDEN_DB_PROBE_INTERVAL_SECONDS": "0.1",
}


@pytest.fixture
def frozen_server(
    cluster: Cluster, tmp_path: Path, make_artifact: ArtifactBuilder
) -> Iterator[tuple[Cluster, LiveServer, str, Settings]]:
    cfg = Settings(
        environment="test",
        data_dir=tmp_path / "data",
        models_dir=tmp_path / "models",
        reports_dir=tmp_path / "reports",
        database_url=cluster.url,
        device="cpu",
        state_poll_seconds=0.1,
    )
    create_keys(cfg)
    engine = make_engine(cfg.resolved_database_url)
    upgrade(engine)
    _, admin = seed(engine, cfg)
    engine.dispose()
    server = LiveServer(cfg, tmp_path / "server.log")
    server.env.update(_FAST)
    server.start()
    try:
        with http_client(base_url=server.url, timeout=30) as http:
            # The admin's key with its settings: appointing the first officer needs them.
            _, client = serve_toy(http, AdminToken(admin, cfg), make_artifact("toy", "1"))
        yield cluster, server, client, cfg
    finally:
        cluster.signal_all(signal.SIGCONT)
        server.stop()


class Caller:
    """Sends predictions and remembers what each answer said."""

    def __init__(self, http: httpx.Client, token: str) -> None:
        self.http = http
        self.token = token
        self.acknowledged: list[str] = []
        self.refused: list[str] = []

    def predict(self, i: int) -> tuple[int, float]:
        started = time.monotonic()
        r = self.http.post(
            "/v1/models/toy/predict", json={"record": toy_record(i)}, headers=auth(self.token)
        )
        took = time.monotonic() - started
        if r.status_code == 200:
            self.acknowledged.append(r.json()["request_id"])
        else:
            assert r.status_code == 503, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert r.headers["retry-after"] == "1"
            self.refused.append(r.headers["x-request-id"])
        return r.status_code, took


def _readyz(http: httpx.Client) -> tuple[int, float, str]:
    started = time.monotonic()
    r = http.get("/readyz")
    return r.status_code, time.monotonic() - started, r.text


def _entries(settings: Settings) -> list[dict[str, object]]:
    engine = make_engine(settings.resolved_database_url)
    try:
        with Session(engine) as session:
            return [json.loads(c) for c in session.scalars(select(AuditEntry.canonical))]
    finally:
        engine.dispose()


def _recovered(caller: Caller, http: httpx.Client, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    i = 1000
    while time.monotonic() < deadline:
        i += 1
        if caller.predict(i)[0] == 200 and _readyz(http)[0] == 200:
            return True
        time.sleep(0.2)
    return False


def test_a_stopped_database_is_refused_fast_and_recovers(
    frozen_server: tuple[Cluster, LiveServer, str, Settings],
) -> None:
    cluster, server, token, cfg = frozen_server
    with http_client(base_url=server.url, timeout=30) as http:
        caller = Caller(http, token)
        assert caller.predict(0)[0] == 200
        assert _readyz(http)[0] == 200
        cluster.signal_all(signal.SIGSTOP)
        try:
            # The first request waits the audit deadline (600 ms here), not for the database:
            # 0.61 s alone, even beside three busy loops on two cores. One CI run measured
            # 1.56 s, cause unknown; the bound tells the deadline from a hang, and a miss
            # shows the server's log.
            status, first_took = caller.predict(1)
            assert status == 503 and first_took < 3.0, (status, first_took, server.log_tail())
            # Then the breaker is open, and the probe has seen the database stop: at once.
            time.sleep(0.5)
            timed = [caller.predict(i) for i in range(2, 12)]
            assert {s for s, _ in timed} == {503}
            took_each = [t for _, t in timed]
            assert statistics.median(took_each) < 0.1, took_each
            assert max(took_each) < 0.5, took_each
            ready, took, body = _readyz(http)
            assert ready == 503 and took < 0.1, (ready, took, body)
            assert "database" in json.loads(body)["detail"]
            # Any other route too: refused before it opens a session that would hang.
            started = time.monotonic()
            r = http.get("/v1/models", headers=auth(token))
            assert r.status_code == 503 and time.monotonic() - started < 0.5, r.text
        finally:
            cluster.signal_all(signal.SIGCONT)
        assert _recovered(caller, http), server.log_tail()
        # The note naming the refused requests is written just after the first commit.
        deadline = time.monotonic() + 5
        while True:
            entries = _entries(cfg)
            answered_200 = {
                e["request_id"]
                for e in entries
                if e["event_type"] == "api.call" and e["outcome"] == 200
            }
            noted: set[str] = set()
            for e in entries:
                if e["event_type"] == "audit.deadline":
                    details = e["details"]
                    assert isinstance(details, dict)
                    noted.update(details["request_ids"])
            late = answered_200 & set(caller.refused)
            if late <= noted or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    # Every answer 200 is in the log; an entry that says 200 for a request answered 503 (its
    # commit came after the deadline) is named by an audit.deadline entry.
    assert set(caller.acknowledged) <= answered_200
    assert late <= noted, (late, noted)
    assert verify(cfg).tree_size == len(entries)


def test_an_unreachable_database_is_refused_within_the_connect_timeout(
    frozen_server: tuple[Cluster, LiveServer, str, Settings],
) -> None:
    cluster, server, token, _ = frozen_server
    with http_client(base_url=server.url, timeout=30) as http:
        caller = Caller(http, token)
        assert caller.predict(0)[0] == 200
        cluster.pg_ctl("-m", "immediate", "stop")  # the port is closed: connections refused
        try:
            timed = [caller.predict(i) for i in range(1, 11)]
            assert {s for s, _ in timed} == {503}
            # The connect timeout is 2 s; a refused connection is an error at once.
            assert max(t for _, t in timed) < 2.5, timed
            ready, took, _ = _readyz(http)
            assert ready == 503 and took < 0.5
        finally:
            cluster.start()
        assert _recovered(caller, http), server.log_tail()


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A loopback port that accepts TCP connections and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


def test_a_silent_database_is_found_within_the_probe_deadline(blackhole: int) -> None:
    # A server that accepts the connection and never answers (a blackholed proxy, a hung
    # PostgreSQL): the probe says so at its deadline, and libpq gives up at connect_timeout.
    engine = make_engine(
        f"postgresql://warden@127.0.0.1:{blackhole}/warden",
        pool_size=1,
        limits=ConnectionLimits(connect_timeout_s=2),
    )
    monitor = DatabaseMonitor(engine, deadline=0.3, interval=60)
    started = time.monotonic()
    monitor.start()
    try:
        deadline = time.monotonic() + 1.5
        while monitor.problem() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert monitor.problem() == "the database has not answered for 300 ms"
        assert time.monotonic() - started < 1.0
        # libpq's connect_timeout ends the attempt: an error, not a hang.
        while monitor.problem() != "the database is not reachable":
            assert time.monotonic() - started < 5.0
            time.sleep(0.05)
    finally:
        monitor.close()
        engine.dispose()


def test_a_held_lock_is_cut_off_by_the_statement_timeout(db_url: str, tmp_path: Path) -> None:
    # A statement stuck behind a lock (or a runaway query) is cancelled by the server at the
    # configured statement timeout: an OperationalError, which the API answers 503.
    if not db_url.startswith("postgresql"):
        pytest.skip("statement_timeout and keepalives are PostgreSQL's")
    cfg = Settings(
        environment="test",
        data_dir=tmp_path,
        database_url=db_url,
        db_statement_timeout_ms=300,
        db_connect_timeout_seconds=3,
        db_keepalives_idle_seconds=7,
    )
    engine = make_engine(db_url, limits=ConnectionLimits.from_settings(cfg))
    holder = make_engine(db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "300ms"
            dbapi = conn.connection.dbapi_connection
            assert dbapi is not None
            params = dbapi.info.get_parameters()  # type: ignore[attr-defined]
            assert params["connect_timeout"] == "3"
            assert (params["keepalives"], params["keepalives_idle"]) == ("1", "7")
        with holder.connect() as held, engine.connect() as conn:
            held.execute(text("SELECT tree_size FROM audit_head WHERE id = 1 FOR UPDATE"))
            started = time.monotonic()
            with pytest.raises(OperationalError):
                conn.execute(text("SELECT tree_size FROM audit_head WHERE id = 1 FOR UPDATE"))
            assert time.monotonic() - started < 2.0
    finally:
        engine.dispose()
        holder.dispose()
