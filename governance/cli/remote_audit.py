"""``warden audit ...`` over the API: entries, and proofs checked here, not taken on trust.

``verify`` checks the latest checkpoint's signature against a key the auditor trusts, a
consistency proof from the checkpoint this machine verified last (kept per server in the config
folder) and, for each ``--entry``, the entry's leaf hash and inclusion proof.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

import typer

from governance.audit.errors import AuditVerificationError
from governance.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from governance.audit.note import Checkpoint, verify_note
from governance.cli.common import JSON, ExitCode, console, err_console, fail, print_json, show_rows
from governance.cli.remote import Remote, config_dir
from governance.cli.routing import RemoteGroup, remote_of
from governance.private_files import open_private, private_dir

app = typer.Typer(
    cls=RemoteGroup, help="The tamper-evident audit log (over the API).", no_args_is_help=True
)


def _failed(message: str) -> NoReturn:
    fail(f"verification failed: {message}", ExitCode.VERIFICATION_FAILED)


def _trusted_file() -> Path:
    return config_dir() / "checkpoints.json"


def _trusted(server: str) -> dict[str, Any] | None:
    try:
        found = json.loads(_trusted_file().read_text(encoding="utf-8")).get(server)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError):
        fail(f"{_trusted_file()} is damaged; remove it to trust the next checkpoint afresh")
    return found if isinstance(found, dict) else None


def _remember(server: str, checkpoint: Checkpoint, vkey: str) -> None:
    path = _trusted_file()
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    known[server] = {"size": checkpoint.size, "root": checkpoint.root.hex(), "vkey": vkey}
    private_dir(path.parent)
    with open_private(path) as out:
        out.write(json.dumps(known, indent=2).encode("utf-8"))


def _signed(note: str, vkey: str) -> Checkpoint:
    try:
        return verify_note(note, vkey)
    except AuditVerificationError as exc:
        _failed(f"checkpoint signature: {exc.message}")


def _check_consistent(remote: Remote, older: Checkpoint, newer: Checkpoint) -> None:
    if older.size == newer.size:
        if older.root != newer.root:
            _failed(f"two signed checkpoints of {older.size} entries have different roots")
        return
    if older.size == 0:
        return
    doc = remote.json(
        "GET", "/v1/audit/consistency", params={"first": older.size, "second": newer.size}
    )
    proof = [bytes.fromhex(node) for node in doc["proof"]]
    if not verify_consistency(older.size, newer.size, proof, older.root, newer.root):
        _failed(f"the tree of {newer.size} does not extend the one of {older.size}")


def _check_entry(remote: Remote, seq: int, head: Checkpoint, vkey: str) -> str:
    doc = remote.json("GET", f"/v1/audit/entries/{seq}")
    leaf = leaf_hash(doc["canonical"].encode("utf-8"))
    if leaf.hex() != doc["leaf_hash"]:
        _failed(f"entry {seq}: its bytes do not hash to the leaf hash the server gave")
    inclusion = doc.get("inclusion")
    if inclusion is None:
        return f"entry {seq}: not yet covered by a checkpoint"
    checkpoint = _signed(inclusion["checkpoint"]["note"], vkey)
    # The log may have been signed again since `head` was read: the two must be one history.
    _check_consistent(remote, *sorted((checkpoint, head), key=lambda c: c.size))
    proof = [bytes.fromhex(node) for node in inclusion["proof"]]
    if not verify_inclusion(leaf, seq, checkpoint.size, proof, checkpoint.root):
        _failed(f"entry {seq}: the inclusion proof does not lead to the signed root")
    return f"entry {seq}: included in the tree of {checkpoint.size}"


@app.command("verify")
def verify(
    ctx: typer.Context,
    vkey: str = typer.Option(
        None,
        help="Trusted verifier key (default: the one kept from an earlier verify, else the "
        "server's, trusted on first use).",
    ),
    entry: list[int] = typer.Option(
        None, "--entry", min=0, help="Also check this entry's inclusion proof (repeatable)."
    ),
    as_json: bool = JSON,
) -> None:
    """Check the latest signed checkpoint, its consistency with the last one verified here,
    and the inclusion of chosen entries; exit 4 when a proof fails."""
    remote = remote_of(ctx)
    server = remote.stored.server
    known = _trusted(server)
    key = vkey or (known or {}).get("vkey")
    if key is None:
        key = remote.json("GET", "/v1/audit/public-key")["vkey"]
        err_console.print(f"trusting the server's key on first use: {key}", markup=False)
    head = _signed(remote.json("GET", "/v1/audit/checkpoints/latest")["note"], key)
    lines = [f"checkpoint: tree of {head.size}, root {head.root.hex()}, signature good"]
    if known is not None and known.get("vkey") == key:
        older = Checkpoint(head.origin, int(known["size"]), bytes.fromhex(known["root"]))
        if older.size > head.size:
            _failed(f"the log shrank: {older.size} entries verified here, {head.size} now")
        _check_consistent(remote, older, head)
        lines.append(f"consistent with the tree of {older.size} verified earlier")
    lines += [_check_entry(remote, seq, head, key) for seq in entry or []]
    _remember(server, head, key)
    if as_json:
        print_json(
            {"ok": True, "tree_size": head.size, "root_hash": head.root.hex(), "checks": lines}
        )
        return
    for line in lines:
        console.print(line, markup=False)
    console.print("OK")


@app.command("entries")
def entries(
    ctx: typer.Context,
    actor: str = typer.Option(None, help="Only this actor."),
    event_type: str = typer.Option(None, "--event-type", help="Only this event type."),
    since: str = typer.Option(None, help="From this time (ISO 8601, inclusive)."),
    limit: int = typer.Option(50, min=1, max=1000, help="At most this many entries."),
    newest: bool = typer.Option(False, "--newest", help="The latest entries, newest first."),
    as_json: bool = JSON,
) -> None:
    """Audit entries, oldest first (or the latest with --newest), filtered."""
    params: dict[str, Any] = {"limit": limit, "order": "desc" if newest else "asc"}
    for key, value in (("actor", actor), ("event_type", event_type), ("since", since)):
        if value is not None:
            params[key] = value
    page = remote_of(ctx).json("GET", "/v1/audit/entries", params=params)
    if as_json:
        print_json(page["entries"])
        return
    rows = [
        {
            "seq": e["seq"],
            "time": e["time"],
            "actor": e["actor"],
            "event": f"{e['event_type']}.{e['action']}",
            "decision": e["decision"],
            "resource": e["resource"],
        }
        for e in page["entries"]
    ]
    show_rows(rows, as_json=False, empty="no audit entries")


@app.command("show")
def show(ctx: typer.Context, seq: int = typer.Argument(..., min=0)) -> None:
    """One entry as signed into the log, with its inclusion proof."""
    print_json(remote_of(ctx).json("GET", f"/v1/audit/entries/{seq}"))


@app.command("public-key")
def public_key(ctx: typer.Context, as_json: bool = JSON) -> None:
    """The log's verifier key, as the server states it."""
    doc = remote_of(ctx).json("GET", "/v1/audit/public-key")
    if as_json:
        print_json(doc)
        return
    typer.echo(doc["vkey"])
