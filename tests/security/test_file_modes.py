"""Every file Warden writes is private, whatever the umask (issue 25, item 13).

The attack: another local account on the host reads the database, its WAL, the server log, a
model artifact or an exported report, because they were created 0644 under the usual 0022
umask. Started under that umask, ``warden init``, a live ``warden serve`` with a prediction
and a report export must leave no group or other bit on anything under the data, models or
reports folders.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from governance.cli.server_process import ServerProcess
from governance.config import Settings
from governance.db import make_engine
from governance.db.base import utcnow
from governance.kit.http import client as http_client
from governance.private_files import copy_private, open_private, private_dir
from tests.conftest import REPO, AdminToken, ArtifactBuilder, WardenFactory, auth, serve_toy
from tests.factories import toy_record


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The usual shell umask (0022): what Warden is started under on most hosts."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _readable_by_others(*roots: Path) -> list[str]:
    found = []
    for root in roots:
        for path in [root, *root.rglob("*")]:
            mode = stat.S_IMODE(path.lstat().st_mode)
            if mode & 0o077:
                found.append(f"{path.relative_to(root.parent)} {oct(mode)}")
    return found


def test_init_serve_predict_and_export_leave_nothing_readable_by_others(
    db_url: str, tmp_path: Path, make_artifact: ArtifactBuilder, loose_umask: None
) -> None:
    root = tmp_path / "warden"
    data, models, reports = root / "data", root / "models", root / "reports"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env.update(
        WARDEN_ENVIRONMENT="test",
        WARDEN_DATA_DIR=str(data),
        WARDEN_MODELS_DIR=str(models),
        WARDEN_REPORTS_DIR=str(reports),
        WARDEN_DEVICE="cpu",
        WARDEN_STATE_POLL_SECONDS="0.05",
    )
    if db_url.startswith("postgresql"):
        env["WARDEN_DATABASE_URL"] = db_url  # else the default: a new SQLite file in data/
    # A process of its own, started as the suite starts servers (forked, under this umask).
    init_log = tmp_path / "init.log"
    init = ServerProcess.default_launcher(
        [sys.executable, "-m", "governance.cli.main", "init"], cwd=REPO, env=env, log=init_log
    )
    assert init.wait(timeout=300) == 0, init_log.read_text()
    deployment = Settings(
        environment="test",
        data_dir=data,
        database_url=env.get("WARDEN_DATABASE_URL", ""),
        models_dir=models,
        reports_dir=reports,
        device="cpu",
    )
    # The factory appoints its officer as the local operator would, with these settings.
    admin = AdminToken(init_log.read_text().strip().splitlines()[-1], deployment)

    server = ServerProcess(env, data / "server.log").start()
    try:
        # The report export renders a PDF: seconds of CPU, far more on a busy machine.
        with http_client(base_url=server.url, timeout=180) as http:
            factory = WardenFactory(http, admin)
            client, _ = serve_toy(factory, make_artifact)
            r = http.post(
                "/v1/models/toy/predict", json={"record": toy_record()}, headers=auth(client)
            )
            assert r.status_code == 200, r.text
            auditor = factory.principal("ada-auditor", "auditor")
            now = utcnow()
            period = {
                "from": (now - timedelta(hours=1)).isoformat(),
                "to": (now + timedelta(hours=1)).isoformat(),
            }
            r = http.post("/v1/reports", json=period, headers=auth(auditor))
            assert r.status_code == 201, r.text
        # While it runs: the WAL and its index exist, and are as private as the database.
        if not db_url.startswith("postgresql"):
            assert (data / "warden.db-wal").exists()
        assert _readable_by_others(data, models, reports) == []
    finally:
        server.stop()
    assert {p.name for p in reports.iterdir()} and any(models.rglob("manifest.json"))
    assert _readable_by_others(data, models, reports) == []


def test_the_helpers_hold_when_warden_is_a_library_under_a_loose_umask(
    tmp_path: Path, loose_umask: None
) -> None:
    # No CLI entry set the umask here: the explicit modes alone must hold.
    folder = private_dir(tmp_path / "a" / "b")
    with open_private(folder / "log", append=True) as fh:
        fh.write(b"line\n")
    shared = tmp_path / "shared.bin"
    shared.write_bytes(b"x")
    os.chmod(shared, 0o644)
    copy_private(shared, folder / "copy.bin")
    engine = make_engine(f"sqlite:///{folder / 'library.db'}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
            assert (folder / "library.db-wal").exists()
            assert _readable_by_others(tmp_path / "a") == []
    finally:
        engine.dispose()
    assert _readable_by_others(tmp_path / "a") == []
