"""The auditor API: browse, filter, paginate, prove, verify and export; refused to clients."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from governance.audit import log as audit_log
from governance.audit.bundle import verify_bundle
from governance.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from governance.audit.note import verify_note
from tests.audit.conftest import FilledLog, empty_log, fill
from tests.conftest import auth
from tests.shared_app import SharedApp


@pytest.fixture(scope="module")
def log(shared_app: SharedApp) -> Iterator[FilledLog]:
    """The app's own log with 40 sample entries appended after the setup calls, signed up to
    its end (how many entries the setup wrote must not decide what is covered). The module's
    tests share it and only read it, or add entries none of the others counts."""
    for filled in empty_log(shared_app.settings):
        with filled.sessions() as session:
            filled.size = audit_log.tree_size(session)
        fill(filled, 40, checkpoint_every=16)
        with filled.sessions.begin() as session:
            row = filled.checkpointer.checkpoint(session, force=True)
            assert row is not None
            filled.checkpoint_sizes.append(row.tree_size)
        yield filled


@pytest.fixture(scope="module")
def auditor(shared_app: SharedApp) -> str:
    return shared_app.warden.principal("aud", "auditor")


@pytest.fixture
def app_client(shared_app: SharedApp) -> Any:
    return shared_app.client


def _get(client: Any, token: str, path: str, **params: Any) -> Any:
    r = client.get(path, params=params, headers=auth(token))
    assert r.status_code == 200, r.text
    return r.json()


def test_list_paginates_gap_free(app_client: Any, auditor: str, log: FilledLog) -> None:
    seqs: list[int] = []
    after = None
    while True:
        params = {"limit": 7} | ({"after": after} if after is not None else {})
        page = _get(app_client, auditor, "/v1/audit/entries", **params)
        seqs += [e["seq"] for e in page["entries"]]
        assert len(page["entries"]) <= 7
        after = page["next_after"]
        if after is None:
            break
    # The listing calls are audited too, so the log grew while we paged: never a gap.
    assert seqs == list(range(len(seqs))) and len(seqs) >= log.size
    first = _get(app_client, auditor, "/v1/audit/entries", limit=1)["entries"][0]
    assert first["document"]["seq"] == 0 and first["seq"] == 0


def test_newest_first_pages_back_gap_free(app_client: Any, auditor: str, log: FilledLog) -> None:
    seqs: list[int] = []
    before = None
    while True:
        params = {"order": "desc", "limit": 9} | ({"before": before} if before is not None else {})
        page = _get(app_client, auditor, "/v1/audit/entries", **params)
        seqs += [e["seq"] for e in page["entries"]]
        before = page["next_after"]
        if before is None:
            break
    # Newest first from the head at the first call, down to entry 0, each once.
    assert seqs == list(range(seqs[0], -1, -1)) and len(seqs) >= log.size
    for wrong in ({"order": "desc", "after": 3}, {"before": 3}):
        r = app_client.get("/v1/audit/entries", params=wrong, headers=auth(auditor))
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")


def test_filters(app_client: Any, auditor: str, log: FilledLog) -> None:
    def entries(**params: Any) -> list[dict[str, Any]]:
        return list(_get(app_client, auditor, "/v1/audit/entries", limit=1000, **params)["entries"])

    mine = entries(actor="user1")
    assert mine and all(e["actor"] == "user1" for e in mine)
    assert len(mine) == sum(1 for i in range(log.size - 40, log.size) if i % 4 == 1)
    denied = entries(decision="deny", event_type="policy.change")
    assert denied and all(
        e["decision"] == "deny" and e["document"]["event_type"] == "policy.change" for e in denied
    )
    about_m2 = entries(resource="model=m2")
    assert about_m2 and all(e["document"]["resource"]["model"] == "m2" for e in about_m2)
    one = entries(request_id=f"req-{log.size - 1}")
    assert [e["seq"] for e in one] == [log.size - 1]
    # Time range: everything so far is before now + 1 h, nothing after.
    later = (datetime.now().astimezone() + timedelta(hours=1)).isoformat()
    assert entries(since=later) == []
    assert len(entries(until=later, actor="user2")) == len(entries(actor="user2"))
    assert (
        app_client.get("/v1/audit/entries", params={"limit": 0}, headers=auth(auditor)).status_code
        == 422
    )


def test_entry_inclusion_proof_verifies(app_client: Any, auditor: str, log: FilledLog) -> None:
    vkey = _get(app_client, auditor, "/v1/audit/public-key")["vkey"]
    assert vkey == log.vkey
    for seq in (0, 1, log.size // 2, log.size - 1):
        body = _get(app_client, auditor, f"/v1/audit/entries/{seq}")
        leaf = bytes.fromhex(body["leaf_hash"])
        assert leaf == leaf_hash(body["canonical"].encode())
        inclusion = body["inclusion"]
        head = verify_note(inclusion["checkpoint"]["note"], vkey)
        assert head.size == inclusion["tree_size"]
        proof = [bytes.fromhex(p) for p in inclusion["proof"]]
        assert verify_inclusion(leaf, seq, head.size, proof, head.root)
        assert not verify_inclusion(leaf, seq + 1, head.size, proof, head.root)
    r = app_client.get("/v1/audit/entries/999999", headers=auth(auditor))
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


def test_consistency_proof_verifies(app_client: Any, auditor: str, log: FilledLog) -> None:
    # The server keeps signing while the test reads (each call is audited), so the latest is
    # read first and must be among the checkpoints listed after it.
    latest = _get(app_client, auditor, "/v1/audit/checkpoints/latest")
    checkpoints = _get(app_client, auditor, "/v1/audit/checkpoints")
    sizes = [c["tree_size"] for c in checkpoints]
    assert sizes == sorted(sizes) and latest["tree_size"] in sizes
    sizes = sizes[: sizes.index(latest["tree_size"]) + 1]
    assert len(sizes) >= 2
    for first in sizes[:-1]:
        body = _get(app_client, auditor, "/v1/audit/consistency", first=first, second=sizes[-1])
        old, new = (
            verify_note(body["checkpoint1"]["note"], log.vkey),
            verify_note(body["checkpoint2"]["note"], log.vkey),
        )
        proof = [bytes.fromhex(p) for p in body["proof"]]
        assert verify_consistency(old.size, new.size, proof, old.root, new.root)
        assert old.root.hex() == body["root1"] and new.root.hex() == body["root2"]
    r = app_client.get("/v1/audit/consistency", params={"first": 3}, headers=auth(auditor))
    assert r.status_code == 404


def test_verify_and_export(app_client: Any, auditor: str, log: FilledLog, tmp_path: Path) -> None:
    report = app_client.post("/v1/audit/verify", headers=auth(auditor)).json()
    assert report["ok"] is True and report["entries_checked"] >= log.size
    r = app_client.post(
        "/v1/audit/export", json={"from_seq": 3, "to_seq": log.size - 2}, headers=auth(auditor)
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    zipfile.ZipFile(io.BytesIO(r.content)).extractall(tmp_path)
    bundle = verify_bundle(tmp_path / "audit-bundle", trusted_vkey=log.vkey)
    assert (bundle.from_seq, bundle.to_seq) == (3, log.size - 2)
    exports = _get(app_client, auditor, "/v1/audit/entries", event_type="audit.export")
    assert [e["document"]["resource"] for e in exports["entries"]] == [
        {"from_seq": 3, "to_seq": log.size - 2}
    ]


def test_client_and_anonymous_are_refused(
    shared_app: SharedApp, log: FilledLog, unique: Callable[[str], str]
) -> None:
    app_client, warden = shared_app.client, shared_app.warden
    name = unique("app")
    client = warden.principal(name, "client", kind="service")
    officer = warden.principal(unique("officer"), "compliance_officer")
    for method, path in (
        ("GET", "/v1/audit/entries"),
        ("GET", "/v1/audit/entries/0"),
        ("GET", "/v1/audit/checkpoints/latest"),
        ("GET", "/v1/audit/public-key"),
        ("POST", "/v1/audit/verify"),
        ("POST", "/v1/audit/export"),
    ):
        r = app_client.request(method, path, headers=auth(client), json={})
        assert r.status_code == 403, (path, r.text)
        assert app_client.request(method, path, json={}).status_code == 401
    # A compliance officer reads the log but neither verifies nor exports it.
    assert app_client.get("/v1/audit/entries", headers=auth(officer)).status_code == 200
    assert app_client.post("/v1/audit/verify", headers=auth(officer)).status_code == 403
    denied = app_client.get(
        "/v1/audit/entries", params={"actor": name, "decision": "deny"}, headers=auth(officer)
    ).json()["entries"]
    assert len(denied) == 6 and all(e["outcome"] == 403 for e in denied)
