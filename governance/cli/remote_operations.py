"""``warden records|vault ...``, ``privacy runs``, ``principals disable`` over the API.

Each command has the local one's name, arguments and output shape. ``vault rotate-due`` and
``vault retire-kek`` have no API route (the schedule runs in the server; retiring edits the
server's key file), so they stay refused. ``report verify`` and ``audit verify-bundle`` only
read files: they are the local commands themselves, in both modes.
"""

from __future__ import annotations

import copy
import io
import json
import re
import sys
import zipfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
import typer

from governance.cli.common import (
    JSON,
    ExitCode,
    console,
    err_console,
    fail,
    print_json,
    show_rows,
)
from governance.cli.lazy import Lazy
from governance.cli.routing import RemoteGroup, remote_of
from governance.kit.bounds import DB_INT_MAX, as_utc
from governance.privacy.kinds import EPOCHS_MAX, SEED_MAX, WORKERS_MAX

records_app = typer.Typer(
    cls=RemoteGroup,
    help="Encrypted prediction records: list, erase subjects, purge (over the API).",
    no_args_is_help=True,
)
vault_app = typer.Typer(
    cls=RemoteGroup, help="Data keys and the KEK (over the API).", no_args_is_help=True
)
# Commands joined into groups other modules own (see groups()).
_audit_app = typer.Typer(cls=RemoteGroup)
_privacy_app = typer.Typer(cls=RemoteGroup)
_principals_app = typer.Typer(cls=RemoteGroup)
_report_app = typer.Typer(cls=RemoteGroup)


def _short(ref: str) -> str:
    # A prefix names the subject's reference; the whole one is no one's business in a table.
    return f"{ref[:16]}…"


@records_app.command("list")
def records_list(
    ctx: typer.Context,
    model: str = typer.Option(None, help="Only this model's records."),
    limit: int = typer.Option(50, min=1, max=1000),
    as_json: bool = JSON,
) -> None:
    """List stored records (metadata only)."""
    params: dict[str, Any] = {"limit": limit}
    if model is not None:
        params["model"] = model
    found = remote_of(ctx).json("GET", "/v1/records", params=params)
    rows = [
        {
            "id": r["id"],
            "created_at": r["created_at"],
            "model": r["model"],
            "version": r["model_version"],
            "subject_ref": _short(r["subject_ref"]),
            "data_key": r["dek_id"],
            "state": r["key_state"],
        }
        for r in found
    ]
    show_rows(rows, as_json=as_json, empty="no records")


@records_app.command("erase")
def records_erase(
    ctx: typer.Context,
    subject_id: str = typer.Argument(
        ...,
        help="The data subject's id; '-' reads it from standard input (keeps it out of "
        "the shell history and the process list).",
    ),
    client: str = typer.Option(
        None, help="The client principal whose subject this is (subject ids are per client)."
    ),
    namespace: str = typer.Option(None, help="A shared namespace (policies/subjects.yaml)."),
    all_clients: bool = typer.Option(
        False, "--all-clients", help="Erase the subject id in every client's scope."
    ),
) -> None:
    """Erase a data subject: destroy its data keys; prints the erasure receipt.

    Name the client (or shared namespace) when more than one holds the subject id.
    """
    if subject_id == "-":
        subject_id = sys.stdin.readline().rstrip("\r\n")
    params: dict[str, Any] = {"all_clients": "true" if all_clients else "false"}
    for key, value in (("client", client), ("namespace", namespace)):
        if value is not None:
            params[key] = value
    # safe="": the id is one path segment whatever it holds (a slash included).
    path = f"/v1/subjects/{quote(subject_id, safe='')}"
    typer.echo(json.dumps(remote_of(ctx).json("DELETE", path, params=params), indent=2))


@records_app.command("purge")
def records_purge(
    ctx: typer.Context, dry_run: bool = typer.Option(False, help="Count only; delete nothing.")
) -> None:
    """Delete records past their retention period (policies/retention.yaml); audited."""
    result = remote_of(ctx).json("POST", "/v1/records/purge", json={"dry_run": dry_run})
    verb = "would delete" if dry_run else "deleted"
    for model, count in sorted(result["deleted"].items()):
        console.print(f"{model}: {verb} {count}")
    console.print(
        f"total {verb} {result['total']} (audit entry {result['audit_seq']}); audit entries "
        f"are kept at least {result['audit_min_days']} days"
    )


@records_app.command("erasures")
def records_erasures(
    ctx: typer.Context, limit: int = typer.Option(50, min=1, max=1000), as_json: bool = JSON
) -> None:
    """List erasure receipts."""
    found = remote_of(ctx).json("GET", "/v1/erasures", params={"limit": limit})
    rows = [
        {
            "id": r["receipt_id"],
            "erased_at": r["erased_at"],
            "erased_by": r["erased_by"],
            "keys": len(r["dek_ids"]),
            "records": r["records_affected"],
        }
        for r in found
    ]
    show_rows(rows, as_json=as_json, empty="no erasures")


@vault_app.command("keys")
def vault_keys(
    ctx: typer.Context,
    state: str = typer.Option(None, help="active, decrypt_only or destroyed."),
    limit: int = typer.Option(50, min=1, max=1000),
    as_json: bool = JSON,
) -> None:
    """List data keys (metadata only)."""
    params: dict[str, Any] = {"limit": limit}
    if state is not None:
        params["state"] = state
    found = remote_of(ctx).json("GET", "/v1/vault/keys", params=params)
    rows = [
        {
            "id": k["id"],
            "version": k["version"],
            "state": k["state"],
            "kek": k["kek_id"],
            "uses": k["uses"],
            "subject_ref": _short(k["subject_ref"]),
        }
        for k in found
    ]
    show_rows(rows, as_json=as_json, empty="no data keys")


@vault_app.command("kek")
def vault_kek(ctx: typer.Context, as_json: bool = JSON) -> None:
    """Show the current KEK version and live data keys under each version."""
    status = remote_of(ctx).json("GET", "/v1/vault/kek")
    usage: dict[str, int] = status["deks_per_kek"]
    if as_json:
        print_json(
            {
                "current": status["current"],
                "available": status["available"],
                "live_data_keys": dict(sorted(usage.items())),
            }
        )
        return
    console.print(f"current {status['current']}; available {', '.join(status['available'])}")
    for kek_id, count in sorted(usage.items()):
        console.print(f"{kek_id}: {count} live data keys")


@vault_app.command("rotate-deks")
def vault_rotate_deks(
    ctx: typer.Context,
    reason: str = typer.Option(..., help="Why (audited)."),
    subject_id: str = typer.Option(
        None, help="Only this subject id's keys (in every client's scope)."
    ),
) -> None:
    """Rotate data keys now: new records get new keys; old ones stay readable."""
    body: dict[str, Any] = {"reason": reason}
    if subject_id is not None:
        body["subject_id"] = subject_id
    done = remote_of(ctx).json("POST", "/v1/vault/deks/rotate", json=body)
    console.print(f"rotated {done['rotated']} data keys")


@vault_app.command("rotate-kek")
def vault_rotate_kek(
    ctx: typer.Context,
    reason: str = typer.Option(..., help="Why (audited)."),
    rewrap_only: bool = typer.Option(
        False,
        help="Do not create a new KEK; rewrap onto the current one (finish an "
        "interrupted rotation, or after rotating in an external secret store).",
    ),
) -> None:
    """Rotate the KEK and rewrap every live data key onto it (records are not re-encrypted)."""
    body = {"reason": reason, "rotate_provider": not rewrap_only}
    done = remote_of(ctx).json("POST", "/v1/vault/kek/rotate", json=body)
    console.print(
        f"KEK {done['from_kek']} -> {done['to_kek']}: rewrapped {done['rewrapped']} data keys"
    )


@vault_app.command("rotations")
def vault_rotations(
    ctx: typer.Context, limit: int = typer.Option(50, min=1, max=1000), as_json: bool = JSON
) -> None:
    """List key rotations."""
    found = remote_of(ctx).json("GET", "/v1/vault/rotations", params={"limit": limit})
    rows = [
        {
            "rotated_at": r["rotated_at"],
            "kind": r["kind"],
            "rotated_by": r["rotated_by"],
            "keys": r["keys_affected"],
            "from_kek": r["from_kek"],
            "to_kek": r["to_kek"],
            "reason": r["reason"],
        }
        for r in found
    ]
    show_rows(rows, as_json=as_json, empty="no key rotations yet")


@_principals_app.command("disable")
def principals_disable(ctx: typer.Context, name: str) -> None:
    """Disable a principal; its keys stop working in every process within a poll period."""
    remote_of(ctx).json("POST", f"/v1/principals/{quote(name, safe='')}/disable")
    console.print(f"disabled {name}")


def _eps(value: float | None) -> str:
    return "∞" if value is None else f"{value:.3f}"


@_privacy_app.command("runs")
def privacy_runs(
    ctx: typer.Context, dataset: str = typer.Option(None, "--dataset"), as_json: bool = JSON
) -> None:
    """List training runs."""
    params = {} if dataset is None else {"dataset": dataset}
    found = remote_of(ctx).json("GET", "/v1/training/runs", params=params)
    if as_json:
        print_json(found)
        return
    table = [
        {
            "id": r["id"],
            "dataset": r["dataset"],
            "status": r["status"],
            "privacy": "DP ε=" + _eps(r["epsilon"]) if r["private"] else "non-private",
            "model": r["model_name"],
            "version": r["model_version"],
            "started_by": r["started_by"],
        }
        for r in found
    ]
    show_rows(table, as_json=False, empty="no training runs")


def privacy_train(
    ctx: typer.Context,
    dataset: str = typer.Option(..., "--dataset", help="A registered (or bundled) dataset."),
    model: str = typer.Option("mlp", "--model", help="mlp or logreg."),
    epsilon: float = typer.Option(1.0, "--epsilon", help="This run's target ε."),
    delta: float = typer.Option(None, "--delta", help="δ (default: the schema's, else the cap's)."),
    epochs: int = typer.Option(10, "--epochs", min=1, max=EPOCHS_MAX),
    seed: int = typer.Option(
        0,
        "--seed",
        min=0,
        max=SEED_MAX,
        help="Seeds model initialisation only; DP noise and sampling use secret OS entropy.",
    ),
    batch_size: int = typer.Option(
        None, "--batch-size", min=1, max=DB_INT_MAX, help="Default 2048 (DP) / 512."
    ),
    lr: float = typer.Option(None, "--lr", help="Default 5e-3 (DP) / 3e-3."),
    non_private: bool = typer.Option(
        False, "--non-private", help="Train without DP (only where the dataset's policy allows)."
    ),
    register: bool = typer.Option(False, "--register", help="Register the model afterwards."),
    name: str = typer.Option(None, "--name", help="Model name (default <dataset>-<model>)."),
    version: str = typer.Option(None, "--version", help="Model version (default run-<id>)."),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        max=WORKERS_MAX,
        help="Processes for data-parallel DP training on the server; the ledger is charged "
        "once, at the global sample rate.",
    ),
) -> None:
    """Train a model on the server under the dataset's privacy budget, as yourself.

    The server answers when the run ends (it reports no epochs on the way): the run is then
    shown as the local command shows it.
    """
    body: dict[str, Any] = {
        "dataset": dataset,
        "model": model,
        "private": not non_private,
        "epsilon": None if non_private else epsilon,
        "epochs": epochs,
        "seed": seed,
        "workers": workers,
        "register": register,
    }
    for key, value in (
        ("delta", delta),
        ("batch_size", batch_size),
        ("lr", lr),
        ("name", name),
        ("version", version),
    ):
        if value is not None:
            body[key] = value
    remote = remote_of(ctx)
    with err_console.status(f"training on {remote.stored.server}…"):
        # A run takes as long as it takes: only connecting is bounded.
        run = remote.json(
            "POST", "/v1/training/runs", json=body, timeout=httpx.Timeout(None, connect=10.0)
        )
    guarantee = (
        f"ε = {run['epsilon']:.4f}, δ = {run['delta']:g}"
        if run["private"]
        else "NON-PRIVATE (no DP)"
    )
    console.print(
        f"run {run['id']} completed: {run['model_name']} {run['model_version']}, {guarantee}, "
        f"test accuracy {run['test_accuracy'] or 0:.4f}"
        + (" (registered)" if run["registered"] else " (artifact kept on the server)")
    )


_privacy_app.command("train")(privacy_train)


@_audit_app.command("export")
def audit_export(
    ctx: typer.Context,
    out: Path = typer.Argument(..., help="Bundle directory to create (must not exist)."),
    from_: str = typer.Option(
        None, "--from", help="First entry: a seq number, or an ISO 8601 time (default: 0)."
    ),
    to: str = typer.Option(
        None,
        "--to",
        help="Last entry, inclusive: a seq number, or an ISO 8601 time (default: the newest "
        "signed checkpoint).",
    ),
    as_json: bool = JSON,
) -> None:
    """Export entries as a bundle anyone can verify offline (docs/audit-bundle.md)."""
    if out.exists():
        fail(f"{out} exists: name a new folder for the bundle", ExitCode.USAGE)
    body: dict[str, Any] = {}
    for end, text, seq_key, time_key in (
        ("from", from_, "from_seq", "since"),
        ("to", to, "to_seq", "until"),
    ):
        if text is None:
            continue
        if text.isdigit():
            body[seq_key] = int(text)
            continue
        try:
            body[time_key] = as_utc(datetime.fromisoformat(text)).isoformat()
        except ValueError:
            fail(f"--{end} must be a seq number or an ISO 8601 time", ExitCode.USAGE)
    answer = remote_of(ctx).call("POST", "/v1/audit/export", json=body)
    named = _BUNDLE_NAME.search(answer.headers.get("content-disposition", ""))
    if named is None:
        fail("the server's answer does not name the bundle's range")
    first, last = int(named["first"]), int(named["last"])
    _unzip_bundle(answer.content, out)
    if as_json:
        print_json({"from_seq": first, "to_seq": last, "bundle": str(out)})
        return
    typer.echo(f"exported entries {first}..{last} to {out}")


_BUNDLE_ROOT = "audit-bundle/"
_BUNDLE_NAME = re.compile(r'filename="audit-bundle-(?P<first>[0-9]+)-(?P<last>[0-9]+)\.zip"')


def _unzip_bundle(data: bytes, out: Path) -> None:
    """Write the server's zip into ``out``.

    Only plain files under the bundle folder are taken: a name that climbs out is refused.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [m for m in archive.infolist() if not m.is_dir()]
        for member in members:
            name = member.filename
            parts = PurePosixPath(name.removeprefix(_BUNDLE_ROOT)).parts
            if not name.startswith(_BUNDLE_ROOT) or not parts or ".." in parts or "\\" in name:
                fail(f"the server's bundle holds an unexpected file {name!r}")
        out.mkdir(parents=True)
        for member in members:
            target = out.joinpath(*PurePosixPath(member.filename.removeprefix(_BUNDLE_ROOT)).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(member))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        fail(f"the server's bundle could not be written to {out}: {type(exc).__name__}: {exc}")


class _AuditGroup(RemoteGroup):
    # Files only, no database: the same command in both modes, imported when it runs.
    lazy: ClassVar[Mapping[str, Lazy]] = {
        "verify-bundle": Lazy(
            "governance.audit.cli",
            "Verify an export bundle using nothing but the bundle (and optionally a trusted "
            "key and a checkpoint seen before).",
            command="verify_bundle_cmd",
        )
    }


class _ReportGroup(RemoteGroup):
    # As above.
    lazy: ClassVar[Mapping[str, Lazy]] = {
        "verify": Lazy(
            "governance.reports.cli_verify",
            "Check a report folder: signature of the manifest and sha256 of every file.",
            command="verify",
        )
    }


def _joined(
    base: typer.Typer, extra: typer.Typer, cls: type[RemoteGroup] = RemoteGroup
) -> typer.Typer:
    """``base`` (its help, callback and commands) with ``extra``'s commands added, as a
    ``cls`` group."""
    joined = typer.Typer()
    joined.info = copy.copy(base.info)
    joined.info.cls = cls
    joined.registered_callback = base.registered_callback
    joined.registered_groups = list(base.registered_groups)
    joined.registered_commands = [*base.registered_commands, *extra.registered_commands]
    return joined


def groups(existing: dict[str, typer.Typer]) -> dict[str, typer.Typer]:
    """This module's groups, and the groups in ``existing`` it adds commands to."""
    return {
        "records": records_app,
        "vault": vault_app,
        "audit": _joined(existing["audit"], _audit_app, _AuditGroup),
        "privacy": _joined(existing["privacy"], _privacy_app),
        "principals": _joined(existing["principals"], _principals_app),
        "report": _joined(existing["report"], _report_app, _ReportGroup),
    }
