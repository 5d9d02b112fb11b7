"""The ML engineer's console pages (issue 29): datasets with their privacy budget, a training
run followed while in progress, the model registry and a bias audit's metrics against the
thresholds; and a person without the role kept out."""

from __future__ import annotations

import threading
import time
from typing import Any

from playwright.sync_api import Page, expect

from governance.kit.http import client as http_client
from tests.conftest import auth
from tests.console.people import axe_violations, person, sign_in
from tests.privacy.conftest import write_synthetic
from tests.servers import SharedServer


def _post(shared: SharedServer, token: str, path: str, body: dict[str, Any]) -> Any:
    with http_client(base_url=shared.url, timeout=300) as client:
        r = client.post(path, json=body, headers=auth(token))
    assert r.status_code == 201, r.text
    return r.json()


def _run_in_progress(shared: SharedServer, token: str, dataset: str) -> bool:
    r = shared.http.get("/v1/training/runs", params={"dataset": dataset}, headers=auth(token))
    assert r.status_code == 200, r.text
    return any(run["status"] == "reserved" for run in r.json())


def test_an_engineer_follows_datasets_runs_models_and_audits(
    shared_server: SharedServer, page: Page
) -> None:
    engineer = person(shared_server, "ml_engineer", prefix="engineer")
    # The work itself goes through the API with a service key: the pages under test only read.
    trainer = shared_server.warden.principal(
        shared_server.unique("trainer"), "ml_engineer", kind="service"
    )
    folder = shared_server.unique("rows")
    dataset, model = shared_server.unique("people"), shared_server.unique("scorer")
    (shared_server.settings.data_dir / "datasets" / folder).mkdir(parents=True)
    write_synthetic(shared_server.settings.data_dir / "datasets" / folder, seed=7)
    _post(
        shared_server,
        trainer,
        "/v1/datasets",
        {"name": dataset, "schema_path": f"{folder}/schema.yaml"},
    )

    run: dict[str, Any] = {}

    def train() -> None:
        run.update(
            _post(
                shared_server,
                trainer,
                "/v1/training/runs",
                {
                    "dataset": dataset,
                    "model": "logreg",
                    "epsilon": 1.0,
                    "delta": 1e-5,
                    "epochs": 3,
                    "batch_size": 60,
                    "name": model,
                    "version": "1",
                    "register_model": True,
                },
            )
        )

    training = threading.Thread(target=train)
    training.start()
    try:
        deadline = time.monotonic() + 60
        while not _run_in_progress(shared_server, trainer, dataset) and training.is_alive():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        sign_in(page, shared_server, engineer, "/console/engineer/runs")
        row = page.locator("#runs tbody tr", has_text=dataset)
        if training.is_alive():
            # Still training: the table polls itself until the run ends, without a reload.
            expect(row.get_by_text("in progress")).to_be_visible()
            assert page.locator("#runs[hx-trigger='every 2s']").count() == 1
        expect(row.get_by_text("completed")).to_be_visible(timeout=120_000)
        assert page.locator("#runs[hx-trigger]").count() == 0
    finally:
        training.join(timeout=300)
    assert run["status"] == "completed"
    # The model is registered once the run has ended, in a transaction of its own.
    page.reload()
    assert model in row.inner_text() and "registered" in row.inner_text()
    assert axe_violations(page) == []

    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Datasets").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Datasets"
    row = page.locator("tbody tr", has_text=dataset)
    # ε spent by the one run, against the default cap of policies/privacy.yaml.
    cells = row.locator("td").all_inner_texts()
    assert 0 < float(cells[3]) <= 1.0
    assert cells[4].startswith("3.00")
    assert axe_violations(page) == []

    page.get_by_role("link", name="Model registry").click()
    row = page.locator("tbody tr", has_text=model)
    assert "registered" in row.inner_text()
    assert engineer.name not in row.inner_text()
    assert axe_violations(page) == []

    audit = _post(
        shared_server,
        trainer,
        "/v1/fairness/audits",
        {
            "model": model,
            "version": "1",
            "dataset": dataset,
            "sensitive": ["group"],
            "bootstrap": 20,
        },
    )
    row.get_by_role("link", name=f"Audits of {model} v1").click()
    assert page.get_by_label("Model").input_value() == model
    listed = page.locator("tbody tr", has_text=model)
    assert listed.count() == 1
    assert ("passed" if audit["passed"] else "failed") in listed.inner_text()
    assert axe_violations(page) == []
    listed.get_by_role("link", name=f"Audit {audit['id']}").click()
    assert page.get_by_role("heading", level=1).inner_text().startswith(f"Audit {audit['id']}")
    parity = page.locator("tr", has_text="demographic parity ratio")
    assert "min 0.8" in parity.inner_text()
    (group,) = [a for a in audit["result"]["audits"] if a["name"] == "group"]
    value = group["disparities"]["demographic_parity_ratio"]["value"]
    assert f"{value:.3f}" in parity.inner_text()
    assert page.locator("tr", has_text="equalized odds difference").count() == 1
    assert axe_violations(page) == []


def test_the_engineer_pages_are_closed_to_a_person_without_the_role(
    shared_server: SharedServer, page: Page
) -> None:
    nobody = person(shared_server, prefix="nobody")
    sign_in(page, shared_server, nobody)
    nav = page.get_by_role("navigation", name="Sections")
    for label in ("Datasets", "Training runs", "Model registry", "Bias audits"):
        assert nav.get_by_role("link", name=label).count() == 0
    for path in ("datasets", "runs", "runs/table", "models", "audits", "audits/1"):
        response = page.goto(f"{shared_server.url}/console/engineer/{path}")
        assert response is not None and response.status == 403, path
    assert axe_violations(page) == []
