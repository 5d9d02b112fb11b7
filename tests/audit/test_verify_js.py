"""The browser's verifier (governance/console/static/verify.js) against Warden's own proofs.

Node runs the module with its WebCrypto (SHA-256, Ed25519) on payloads built by
``governance.audit.browser_proof`` from a real log; Chromium runs it on a page under the
console's Content-Security-Policy.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import governance
from governance.audit import log as audit_log
from governance.audit.browser_proof import consistency_payload, entry_proof_payload
from governance.audit.errors import AuditNotFound, InvalidProofRequest
from governance.audit.note import sign_note, vkey_for
from tests.audit.conftest import FilledLog, empty_log, fill
from tests.conftest import auth
from tests.servers import SharedServer

VERIFY_JS = Path(governance.__file__).parent / "console" / "static" / "verify.js"
NODE = shutil.which("node")

# Reads [[function name, argument], ...] on stdin, prints [{ok, reason}, ...].
RUNNER = """
import { readFileSync } from "node:fs";
const verify = await import(process.argv[1]);
const calls = JSON.parse(readFileSync(0, "utf8"));
const out = [];
for (const [name, arg] of calls) {
  const { ok, reason } = await verify[name](arg);
  out.push({ ok, reason });
}
process.stdout.write(JSON.stringify(out));
"""

needs_node = pytest.mark.skipif(NODE is None, reason="node is not on PATH")
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def run_js(calls: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    assert NODE is not None
    done = subprocess.run(
        [NODE, "--input-type=module", "-e", RUNNER, VERIFY_JS.as_uri()],
        input=json.dumps(calls),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def flip_hex(text: str) -> str:
    return ("1" if text[0] == "0" else "0") + text[1:]


def note_lines(note: str) -> list[str]:
    return note.split("\n")


def with_root(note: str, root: bytes) -> str:
    lines = note_lines(note)
    lines[2] = base64.b64encode(root).decode()
    return "\n".join(lines)


def with_flipped_signature(note: str) -> str:
    lines = note_lines(note)
    name, encoded = lines[-2].rsplit(" ", 1)
    raw = bytearray(base64.b64decode(encoded))
    raw[-1] ^= 0x01
    lines[-2] = f"{name} {base64.b64encode(bytes(raw)).decode()}"
    return "\n".join(lines)


def signed_by_stranger(note: str, origin: str) -> str:
    body = note[: note.rindex("\n\n") + 1]
    return sign_note(body, origin, Ed25519PrivateKey.generate())


def entry_payload(log: FilledLog, seq: int) -> dict[str, Any]:
    with log.sessions() as session:
        return entry_proof_payload(session, seq, vkey=log.vkey)


def expect(results: list[dict[str, Any]], cases: list[tuple[str, bool, str]]) -> None:
    """Each result against (label, ok, a fragment its reason must contain)."""
    assert len(results) == len(cases)
    for result, (label, ok, fragment) in zip(results, cases, strict=True):
        assert result["ok"] is ok, f"{label}: {result}"
        assert fragment in result["reason"], f"{label}: {result['reason']!r}"


@needs_node
def test_every_entry_and_checkpoint_pair_verifies(filled: FilledLog) -> None:
    with filled.sessions() as session:
        entries = [entry_proof_payload(session, seq, vkey=filled.vkey) for seq in range(53)]
        sizes = filled.checkpoint_sizes
        pairs = [
            consistency_payload(session, vkey=filled.vkey, first=a, second=b)
            for a in sizes
            for b in sizes
            if a <= b
        ]
    assert all(p["inclusion"]["tree_size"] == 53 for p in entries)

    results = run_js(
        [("verifyEntryProof", p) for p in entries] + [("verifyPayload", p) for p in pairs]
    )

    assert [r for r in results if not r["ok"]] == []
    assert results[0]["reason"].startswith("entry 0 is in the log at tree size 53")
    assert any(f"extends the tree of size {sizes[0]}" in r["reason"] for r in results)


@needs_node
def test_tampered_inclusion_fails_with_a_reason(filled: FilledLog) -> None:
    good = entry_payload(filled, 21)
    inclusion = good["inclusion"]
    checkpoint = inclusion["checkpoint"]
    root = checkpoint["root_hash"]

    def tampered(change: Any) -> dict[str, Any]:
        payload = copy.deepcopy(good)
        change(payload)
        return payload

    def flip_proof(p: dict[str, Any]) -> None:
        p["inclusion"]["proof"][1] = flip_hex(p["inclusion"]["proof"][1])

    def note_root(p: dict[str, Any]) -> None:
        p["inclusion"]["checkpoint"]["note"] = with_root(checkpoint["note"], b"\x07" * 32)

    fill(filled, 2, checkpoint_every=1000)  # a real entry beyond the signed tree

    cases: list[tuple[tuple[str, Any], tuple[str, bool, str]]] = [
        (("verifyEntryProof", good), ("valid", True, "entry 21 is in the log")),
        (
            ("verifyEntryProof", tampered(flip_proof)),
            ("flipped proof byte", False, "does not match the root of tree size 53"),
        ),
        (
            (
                "verifyInclusion",
                {
                    "canonical": good["canonical"],
                    "index": 22,
                    "treeSize": 53,
                    "proof": inclusion["proof"],
                    "root": root,
                },
            ),
            ("wrong index", False, "does not match the root"),
        ),
        (
            ("verifyEntryProof", tampered(lambda p: p.update(seq=22))),
            ("wrong seq", False, "the entry's own seq is not 22"),
        ),
        (
            (
                "verifyInclusion",
                {
                    "canonical": good["canonical"],
                    "index": 21,
                    "treeSize": 32,
                    "proof": inclusion["proof"],
                    "root": root,
                },
            ),
            # Sizes 33 to 64 give leaf 21 the same path: only the signed size binds it.
            ("wrong tree size", False, "longer than the tree needs"),
        ),
        (
            ("verifyEntryProof", tampered(lambda p: p["inclusion"].update(tree_size=52))),
            ("tree size field", False, "the proof is for tree size 52"),
        ),
        (
            (
                "verifyEntryProof",
                tampered(lambda p: p.update(canonical=p["canonical"].replace("req-21", "req-99"))),
            ),
            ("tampered leaf", False, "does not match the root of tree size 53"),
        ),
        (
            ("verifyEntryProof", tampered(lambda p: p.update(leaf_hash=flip_hex(p["leaf_hash"])))),
            ("server's leaf hash", False, "leaf hash is not the hash"),
        ),
        (
            ("verifyEntryProof", tampered(note_root)),
            ("checkpoint root in note", False, "signature does not verify"),
        ),
        (
            (
                "verifyEntryProof",
                tampered(lambda p: p["inclusion"]["checkpoint"].update(root_hash=flip_hex(root))),
            ),
            ("checkpoint root field", False, "root hash is not the one its note signs"),
        ),
        (
            (
                "verifyEntryProof",
                tampered(
                    lambda p: p["inclusion"]["checkpoint"].update(
                        note=with_flipped_signature(checkpoint["note"])
                    )
                ),
            ),
            ("bad signature", False, "signature does not verify with the log's key"),
        ),
        (
            (
                "verifyEntryProof",
                tampered(
                    lambda p: p["inclusion"]["checkpoint"].update(
                        note=signed_by_stranger(checkpoint["note"], filled.checkpointer.origin)
                    )
                ),
            ),
            ("another key's signature", False, "no signature from the log's key"),
        ),
        (
            (
                "verifyEntryProof",
                tampered(
                    lambda p: p.update(
                        vkey=vkey_for(
                            filled.checkpointer.origin, Ed25519PrivateKey.generate().public_key()
                        )
                    )
                ),
            ),
            ("another log key", False, "no signature from the log's key"),
        ),
        (
            ("verifyEntryProof", entry_payload(filled, 53)),
            ("not yet signed", False, "no signed checkpoint covers entry 53 yet"),
        ),
        (
            ("verifyPayload", {"kind": "inclusion", "seq": "x"}),
            ("malformed", False, "not a non-negative integer"),
        ),
    ]

    expect(run_js([call for call, _ in cases]), [want for _, want in cases])


@needs_node
def test_tampered_consistency_fails_with_a_reason(filled: FilledLog) -> None:
    older, newer = filled.checkpoint_sizes[2], filled.checkpoint_sizes[-1]
    with filled.sessions() as session:
        good = consistency_payload(session, vkey=filled.vkey, first=older)
        other = consistency_payload(session, vkey=filled.vkey, first=filled.checkpoint_sizes[0])
    assert (good["size1"], good["size2"]) == (older, newer)

    def tampered(change: Any) -> dict[str, Any]:
        payload = copy.deepcopy(good)
        change(payload)
        return payload

    def flip_proof(p: dict[str, Any]) -> None:
        p["proof"][0] = flip_hex(p["proof"][0])

    direct = {
        "size1": older,
        "size2": newer,
        "proof": good["proof"],
        "root1": good["checkpoint1"]["root_hash"],
        "root2": good["checkpoint2"]["root_hash"],
    }
    cases: list[tuple[tuple[str, Any], tuple[str, bool, str]]] = [
        (("verifyPayload", good), ("valid", True, f"extends the tree of size {older}")),
        (("verifyConsistency", direct), ("valid direct", True, "extends")),
        (
            ("verifyPayload", tampered(flip_proof)),
            ("flipped proof byte", False, "does not lead to the root"),
        ),
        (
            ("verifyConsistency", {**direct, "root1": other["checkpoint1"]["root_hash"]}),
            ("another older root", False, f"root of tree size {older}"),
        ),
        (
            ("verifyConsistency", {**direct, "size1": older + 1}),
            ("wrong first size", False, "the consistency proof is longer"),
        ),
        (
            ("verifyPayload", tampered(lambda p: p.update(size1=older + 1))),
            ("size field", False, "not the ones the checkpoints sign"),
        ),
        (
            (
                "verifyPayload",
                tampered(
                    lambda p: p["checkpoint2"].update(
                        note=with_root(p["checkpoint2"]["note"], b"\x01" * 32)
                    )
                ),
            ),
            ("newer root in note", False, "signature does not verify"),
        ),
        (
            (
                "verifyPayload",
                tampered(
                    lambda p: p.update(checkpoint1=p["checkpoint2"], checkpoint2=p["checkpoint1"])
                ),
            ),
            ("swapped checkpoints", False, "not the ones the checkpoints sign"),
        ),
        (
            ("verifyConsistency", {**direct, "size1": newer + 1, "size2": newer}),
            ("shrinking", False, "larger than the second"),
        ),
        (
            ("verifyConsistency", {**direct, "proof": []}),
            ("empty proof", False, "the consistency proof is empty"),
        ),
        (
            (
                "verifyCheckpointSignature",
                {"note": with_flipped_signature(good["checkpoint1"]["note"]), "vkey": good["vkey"]},
            ),
            ("bad signature", False, "signature does not verify"),
        ),
        (
            ("verifyCheckpointSignature", {"note": good["checkpoint1"]["note"], "vkey": "a+b+c"}),
            ("malformed key", False, "invalid name or key ID"),
        ),
    ]

    expect(run_js([call for call, _ in cases]), [want for _, want in cases])


@needs_node
def test_api_responses_verify_with_the_published_key(common_server: SharedServer) -> None:
    http = common_server.http
    token = common_server.warden.principal(common_server.unique("aud"), "auditor")

    def sign() -> None:
        for log in empty_log(common_server.settings):
            with log.sessions.begin() as session:
                log.checkpointer.checkpoint(session, force=True)

    sign()

    def get(path: str, **params: Any) -> Any:
        response = http.get(path, params=params, headers=auth(token))
        assert response.status_code == 200, response.text
        return response.json()

    vkey = get("/v1/audit/public-key")["vkey"]
    entry = get("/v1/audit/entries/0") | {"vkey": vkey}
    first = get("/v1/audit/checkpoints", limit=1)[0]["tree_size"]
    # A later checkpoint over a larger tree, whether or not the server's timer has signed one.
    common_server.warden.principal(common_server.unique("aud"), "auditor")
    sign()
    pair = get("/v1/audit/consistency", first=first) | {"vkey": vkey}
    forged = copy.deepcopy(pair)
    forged["root1"] = flip_hex(forged["root1"])

    results = run_js(
        [
            ("verifyEntryProof", entry),
            ("verifyCheckpointConsistency", pair),
            ("verifyCheckpointConsistency", forged),
        ]
    )

    expect(
        results,
        [
            ("entry", True, "entry 0 is in the log"),
            ("consistency", True, f"extends the tree of size {first}"),
            ("forged root field", False, "roots are not the ones the checkpoints sign"),
        ],
    )


def test_payload_reads_refuse_what_does_not_exist(filled: FilledLog) -> None:
    with filled.sessions() as session:
        with pytest.raises(AuditNotFound):
            entry_proof_payload(session, 999, vkey=filled.vkey)
        with pytest.raises(AuditNotFound):
            consistency_payload(session, vkey=filled.vkey, first=7)
        with pytest.raises(InvalidProofRequest):
            consistency_payload(
                session,
                vkey=filled.vkey,
                first=filled.checkpoint_sizes[-1],
                second=filled.checkpoint_sizes[0],
            )
        assert audit_log.tree_size(session) == 53


def test_verify_js_runs_no_code_from_data_and_calls_no_network() -> None:
    source = VERIFY_JS.read_text(encoding="utf-8")
    forbidden = {
        "eval": r"\beval\s*\(",
        "Function constructor": r"\bFunction\s*\(",
        "string timers": r"\bset(?:Timeout|Interval)\s*\(\s*['\"`]",
        "HTML sinks": r"innerHTML|outerHTML|insertAdjacentHTML|document\.write",
        "network": r"\bfetch\s*\(|XMLHttpRequest|WebSocket|EventSource|sendBeacon",
        "imports": r"^\s*import\b|\bimport\s*\(",
    }
    found = {name: re.findall(pattern, source, re.M) for name, pattern in forbidden.items()}
    assert {name: hits for name, hits in found.items() if hits} == {}
    # The verdict is written as text.
    assert "status.textContent =" in source


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Entry</title>
<script type="module" src="/console/static/verify.js"></script></head>
<body>
<section data-proof="good-proof"><p role="status">not checked</p></section>
<script type="application/json" id="good-proof">{good}</script>
<section data-proof="bad-proof"><p role="status">not checked</p></section>
<script type="application/json" id="bad-proof">{bad}</script>
<section data-proof="pair-proof"><p role="status">not checked</p></section>
<script type="application/json" id="pair-proof">{pair}</script>
</body></html>
"""

CSP = "default-src 'none'; script-src 'self'; style-src 'self'"


@sqlite_only
def test_page_shows_a_tampered_proof_as_failed(filled: FilledLog) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed")
    from jinja2.utils import htmlsafe_json_dumps

    good = entry_payload(filled, 5)
    bad = copy.deepcopy(good)
    # Markup in the entry text must reach the page as data and the verdict as text.
    bad["canonical"] = good["canonical"].replace("req-5", "</script><b>req-5</b>")
    with filled.sessions() as session:
        pair = consistency_payload(session, vkey=filled.vkey, first=filled.checkpoint_sizes[0])
    page_html = PAGE.format(
        good=htmlsafe_json_dumps(good), bad=htmlsafe_json_dumps(bad), pair=htmlsafe_json_dumps(pair)
    )
    # localhost is a secure context, where browsers offer WebCrypto; routes answer offline.
    origin = "http://localhost:9"

    def serve(route: Any) -> None:
        path = route.request.url.removeprefix(origin)
        if path == "/console/static/verify.js":
            body, kind = VERIFY_JS.read_text(encoding="utf-8"), "text/javascript"
        elif path == "/console/audit/entries/5":
            body, kind = page_html, "text/html"
        else:
            route.fulfill(status=404, body="")
            return
        route.fulfill(
            status=200, body=body, content_type=kind, headers={"Content-Security-Policy": CSP}
        )

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        try:
            page = browser.new_page()
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.route(f"{origin}/**", serve)
            page.goto(f"{origin}/console/audit/entries/5")
            page.wait_for_selector(
                "[data-proof]:not([data-proof-state=checking])[data-proof-state]"
            )
            page.wait_for_function(
                "[...document.querySelectorAll('[data-proof]')]"
                ".every(e => ['ok', 'failed'].includes(e.dataset.proofState))"
            )
            verdicts = page.eval_on_selector_all(
                "[role=status]",
                "els => els.map(e => [e.className, e.textContent, e.children.length])",
            )
        finally:
            browser.close()

    assert problems == []
    (good_class, good_text, _), (bad_class, bad_text, bad_children), pair_verdict = verdicts
    assert good_class == "ok"
    assert good_text.startswith("Verified: entry 5 is in the log at tree size 53")
    assert bad_class == "failed"
    assert bad_text.startswith("Not verified:") and bad_children == 0
    assert pair_verdict[0] == "ok"
    assert f"extends the tree of size {filled.checkpoint_sizes[0]}" in pair_verdict[1]
