"""SQLite on a full disk: requests are refused with 503, nothing is corrupted, and the service
recovers when space returns. Uses a real tmpfs of a few MiB (needs root; skipped otherwise)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from governance.bootstrap import create_keys, seed
from governance.config import Settings
from governance.db import make_engine
from governance.db.migrate import upgrade
from governance.kit.http import client as http_client
from tests.conftest import AdminToken, ArtifactBuilder, LiveServer, auth
from tests.factories import toy_record
from tests.reliability.conftest import logged_request_ids, serve_toy, verify

pytestmark = pytest.mark.reliability


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()[:200]}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):  # ENOSPC ends the loop: the disk is full
            while True:
                os.write(fd, b"\0" * 65536)
        with contextlib.suppress(OSError):  # then the last few bytes, one block at a time
            while True:
                os.write(fd, b"\0" * 512)
    finally:
        os.close(fd)
    return filler


def test_disk_full_refuses_then_recovers(
    tiny_disk: Path, tmp_path: Path, make_artifact: ArtifactBuilder
) -> None:
    cfg = Settings(
        environment="test",
        data_dir=tiny_disk,
        models_dir=tmp_path / "models",
        reports_dir=tmp_path / "reports",
        database_url=f"sqlite:///{tiny_disk}/w.db",
        device="cpu",
        state_poll_seconds=0.1,
    )
    create_keys(cfg)
    engine = make_engine(cfg.resolved_database_url)
    upgrade(engine)
    _, admin = seed(engine, cfg)
    engine.dispose()
    server = LiveServer(cfg, tmp_path / "server.log")
    server.start()
    acknowledged: list[str] = []
    statuses: list[int] = []
    try:
        with http_client(base_url=server.url, timeout=30) as http:
            _, client = serve_toy(http, AdminToken(admin, cfg), make_artifact("toy", "1"))

            def call(i: int) -> int:
                r = http.post(
                    "/v1/models/toy/predict", json={"record": toy_record(i)}, headers=auth(client)
                )
                if r.status_code == 200:
                    acknowledged.append(r.json()["request_id"])
                else:
                    assert r.headers["content-type"] == "application/problem+json"
                return r.status_code

            assert call(0) == 200
            filler = _fill(tiny_disk)
            statuses = [call(i) for i in range(1, 40)]
            assert 500 not in statuses
            assert 503 in statuses, statuses
            assert set(statuses) <= {200, 503}
            filler.unlink()
            recovered = [call(i) for i in range(40, 60)]
            assert recovered[-1] == 200 and recovered.count(200) >= 15, recovered
    finally:
        server.stop()
    with sqlite3.connect(tiny_disk / "w.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    report = verify(cfg)
    assert report.tree_size >= len(acknowledged)
    assert set(acknowledged) <= logged_request_ids(cfg)
