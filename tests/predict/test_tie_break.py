"""The randomized thresholds' tie-break: one secret draw per subject, audited, replayable."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from governance.predict.tiebreak import subject_draw, tie_break_key
from inference.architectures import build_model
from inference.artifact import save_artifact
from inference.manifest import parse_manifest
from tests.conftest import auth, serve_toy
from tests.factories import toy_manifest, toy_record
from tests.servers import SharedServer

# Every group's rule is "positive with probability 1/2, whatever the score": the draw alone
# decides, the region a client would try to game.
HALF = {"p0": 0.5, "t0": -2.0, "p1": 0.5, "t1": 2.0}


def coin_artifact(tmp_path: Path, name: str = "toy", version: str = "1") -> Path:
    doc: dict[str, Any] = toy_manifest(name, version)
    doc["postprocessing"] = {
        "kind": "group_threshold",
        "feature": "sex",
        "positive_label": 1,
        "groups": {"Female": HALF, "Male": HALF},
        "default": HALF,
    }
    torch.manual_seed(0)
    stub = parse_manifest({**doc, "weights": {"file": "w", "sha256": "0" * 64}})
    out = tmp_path / f"coin-{name}-{version}"
    save_artifact(out, build_model(stub.architecture), doc)
    return out


@dataclass
class Coin:
    """The coin model as served, a client allowed to call it and an auditor."""

    http: httpx.Client
    model: str
    client: str
    auditor: str


@pytest.fixture(scope="module")
def coin(common_server: SharedServer) -> Coin:
    """The session's server serving a coin model of this module's; its tests draw for subjects
    of their own."""
    s = common_server
    model = s.unique("coin")
    client, _ = serve_toy(
        s.warden,
        lambda name, version: coin_artifact(s.folder, name, version),
        model=model,
        names=s.unique,
    )
    auditor = s.warden.principal(s.unique("audra"), "auditor")
    return Coin(s.http, model, client, auditor)


def _predict(coin: Coin, record: dict[str, Any], subject: str) -> str:
    r = coin.http.post(
        f"/v1/models/{coin.model}/predict",
        json={"record": record, "subject_id": subject},
        headers=auth(coin.client),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["predictions"][0]["probabilities"]["yes"] == 0.5
    return str(body["request_id"]) + " " + str(body["predictions"][0]["label"])


def _audited_draw(http: httpx.Client, auditor: str, request_id: str) -> dict[str, Any]:
    r = http.get(
        "/v1/audit/entries",
        params={"request_id": request_id, "event_type": "api.call"},
        headers=auth(auditor),
    )
    assert r.status_code == 200, r.text
    (entry,) = r.json()["entries"]
    return dict(entry["document"]["details"]["tie_break"])


def test_a_nudged_record_keeps_its_subjects_draw(coin: Coin) -> None:
    record = toy_record(3)
    outcomes = set()
    draws = set()
    for hours in (40, 40.0002, 39.9999, 41, 40.5):
        request_id, label = _predict(coin, {**record, "hours": hours}, "subject-a").split()
        tie = _audited_draw(coin.http, coin.auditor, request_id)
        # The auditor replays the decision: positive exactly when u < P(positive) = 1/2.
        assert (label == "yes") == (tie["u"] < 0.5)
        assert tie["scheme"] == "hmac-sha256/subject/1"
        outcomes.add(label)
        draws.add(tie["u"])
    assert len(outcomes) == 1 and len(draws) == 1


def test_the_same_record_draws_per_subject(coin: Coin) -> None:
    labels = {_predict(coin, toy_record(3), f"subject-{i}").split()[1] for i in range(16)}
    # Sixteen fair, independent draws all alike would happen with probability 2**-15.
    assert labels == {"yes", "no"}


def test_without_the_key_the_draw_cannot_be_computed() -> None:
    ref = "ab" * 32
    mine = tie_break_key(os.urandom(32))
    other = tie_break_key(os.urandom(32))
    draws = {subject_draw(mine, model="toy", subject_ref=ref)}
    assert subject_draw(mine, model="toy", subject_ref=ref) in draws  # stable under one key
    assert subject_draw(other, model="toy", subject_ref=ref) not in draws
    # Per model as well: one model's draw says nothing of another's.
    assert subject_draw(mine, model="toy2", subject_ref=ref) not in draws
    assert all(0.0 <= subject_draw(mine, model="m", subject_ref=f"{i:064x}") < 1 for i in range(50))
