"""The server process keeps its startup heap out of full garbage collections."""

from __future__ import annotations

import gc

from fastapi.testclient import TestClient

from governance.api.app import create_app
from governance.config import Settings


def test_server_app_freezes_the_heap_it_started_with(settings: Settings, admin_token: str) -> None:
    gc.unfreeze()
    try:
        with TestClient(create_app(settings, freeze_heap=True)) as client:
            # Everything alive once the runtime started (models, policy, modules) is frozen.
            assert gc.get_freeze_count() > 10_000
            assert client.get("/readyz").status_code == 200
    finally:
        gc.unfreeze()


def test_apps_built_by_tests_leave_the_collector_alone(
    settings: Settings, admin_token: str
) -> None:
    gc.unfreeze()
    with TestClient(create_app(settings)):
        assert gc.get_freeze_count() == 0
