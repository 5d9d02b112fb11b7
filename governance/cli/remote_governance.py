"""Policy history and tests, fairness audits and thresholds, dataset and model registration,
over the API as the signed-in person: the remote twins of the direct-mode commands.

Each group here adds commands to the remote tree's group of the same name (``extend``).
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer
import yaml
from rich.table import Table

from governance.cli.common import JSON, ExitCode, console, fail, print_json, show_fields
from governance.cli.routing import RemoteGroup, remote_of
from governance.datasets.display import readable
from governance.fairness.display import print_audit_tables, tradeoff_table
from governance.private_files import open_private, private_dir

policy_app = typer.Typer(cls=RemoteGroup)
policy_tests_app = typer.Typer(
    cls=RemoteGroup,
    help="Policy tests: decisions every policy version must keep.",
    no_args_is_help=True,
)
policy_app.add_typer(policy_tests_app, name="test")

ADD = typer.Option(None, "--add", help='A rule to add, e.g. "g, alice, role:auditor".')
REMOVE = typer.Option(None, "--remove", help="A rule to remove (same form).")
FILE = typer.Option(None, "--file", help='JSON {"add": [[...]], "remove": [[...]]}.')


def _part(text: str) -> str:
    return quote(text, safe="")


def _when(text: str | None) -> str:
    """An API timestamp as the direct-mode commands print one."""
    return f"{datetime.fromisoformat(text):%Y-%m-%d %H:%M:%S}" if text else "-"


def _change(
    add: list[str] | None, remove: list[str] | None, file: Path | None
) -> tuple[list[Any], list[Any]]:
    adds: list[Any] = [[p.strip() for p in t.split(",")] for t in add or []]
    removes: list[Any] = [[p.strip() for p in t.split(",")] for t in remove or []]
    if file is not None:
        try:
            doc = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(str(exc), param_hint="--file") from exc
        if not isinstance(doc, dict):
            raise typer.BadParameter(
                'expected {"add": [...], "remove": [...]}', param_hint="--file"
            )
        adds += list(doc.get("add", []))
        removes += list(doc.get("remove", []))
    return adds, removes


# -- policy ----------------------------------------------------------------------------------


@policy_app.command("history")
def policy_history(
    ctx: typer.Context,
    limit: int = typer.Option(50, min=1, max=1000, help="Newest N versions."),
    as_json: bool = JSON,
) -> None:
    """Every version: who, when, why, approved by whom, and its size of change."""
    remote = remote_of(ctx)
    current = remote.json("GET", "/v1/policy")["version"]
    offset = max(current - limit, 0)
    docs = remote.json("GET", "/v1/policy/versions", params={"offset": offset, "limit": limit})
    docs = [{k: v for k, v in d.items() if k != "parent"} for d in docs]
    if as_json:
        print_json(docs)
        return
    for d in docs:
        approved = f" approved by {d['approved_by']}" if d["approved_by"] else ""
        console.print(
            f"v{d['version']:<5} {_when(d['created_at'])} {d['kind']:8} "
            f"+{len(d['diff'].get('added', []))}/-{len(d['diff'].get('removed', []))} "
            f"{d['author']}{approved}: {d['reason']}",
            markup=False,
        )


@policy_app.command("diff")
def policy_diff(
    ctx: typer.Context,
    old: int = typer.Argument(..., min=1),
    new: int = typer.Argument(None, min=1, help="Default: the current version."),
    as_json: bool = JSON,
) -> None:
    """Rules added and removed between two versions."""
    params = {"from": old} if new is None else {"from": old, "to": new}
    doc = remote_of(ctx).json("GET", "/v1/policy/diff", params=params)
    if as_json:
        print_json(doc)
        return
    console.print(f"v{doc['from_version']} -> v{doc['to_version']}")
    for row in doc["added"]:
        console.print("+ " + ", ".join(row), style="green", markup=False)
    for row in doc["removed"]:
        console.print("- " + ", ".join(row), style="red", markup=False)


@policy_app.command("rollback")
def policy_rollback(
    ctx: typer.Context,
    to_version: int = typer.Argument(..., min=1),
    reason: str = typer.Option(..., help="Why (required, audited)."),
    as_json: bool = JSON,
) -> None:
    """Restore an earlier version's rules as a new version."""
    body = {"to_version": to_version, "reason": reason}
    response = remote_of(ctx).call("POST", "/v1/policy/rollback", json=body)
    doc = response.json()
    if response.status_code == 202:
        if as_json:
            print_json({"status": "pending", "proposal_id": doc["id"]})
        else:
            console.print(f"rollback proposal {doc['id']} is pending approval")
        return
    if as_json:
        print_json(
            {
                "status": "applied",
                "version": doc["version"],
                "restores": to_version,
                "sha256": doc["sha256"],
            }
        )
        return
    console.print(
        f"policy version {doc['version']} restores version {to_version} (sha256 {doc['sha256']})"
    )


@policy_app.command("impact")
def policy_impact(
    ctx: typer.Context,
    add: list[str] = ADD,
    remove: list[str] = REMOVE,
    file: Path = FILE,
    to_version: int = typer.Option(None, min=1, help="Dry-run a rollback to this version instead."),
    days: int = typer.Option(30, min=1, help="Replay the audited requests of N days."),
    examples: int = typer.Option(5, min=0, help="Examples per principal."),
    as_json: bool = JSON,
) -> None:
    """Dry run: who would gain or lose access to what (nothing is written)."""
    adds, removes = _change(add, remove, file)
    body: dict[str, Any] = {"add": adds, "remove": removes, "days": days, "examples": examples}
    if to_version is not None:
        body["to_version"] = to_version
    doc = remote_of(ctx).json("POST", "/v1/policy/impact", json=body)
    if as_json:
        print_json(doc)
        return
    totals = doc["totals"]
    console.print(
        f"against version {doc['current_version']}, {doc['entries_scanned']} audited "
        f"requests of {days} days ({doc['distinct_requests']} distinct)"
        + (" truncated" if doc["truncated"] else ""),
        markup=False,
    )
    for title, key in (("would GAIN access", "gained"), ("would LOSE access", "lost")):
        count = totals["requests_" + ("gaining" if key == "gained" else "losing")]
        console.print(f"{title}: {len(doc[key])} principals, {count} requests", markup=False)
        for group in doc[key]:
            console.print(
                f"  {group['principal']}: {group['requests']} requests, "
                f"{group['permissions']} permissions",
                markup=False,
            )
            for ex in group["examples"]:
                console.print(
                    f"    {ex['action']} {ex['object']} "
                    f"({ex['requests']}x, last {ex['last_seen']})",
                    markup=False,
                )


@policy_app.command("timeline")
def policy_timeline(
    ctx: typer.Context,
    principal: str = typer.Option(None, help="Only this principal."),
    role: str = typer.Option(None, help="Only this role."),
    as_json: bool = JSON,
) -> None:
    """Who held which role, from when to when, granted by whom."""
    params = {k: v for k, v in (("principal", principal), ("role", role)) if v is not None}
    docs = remote_of(ctx).json("GET", "/v1/policy/role-timeline", params=params)
    if as_json:
        print_json(docs)
        return
    for d in docs:
        until = (
            f"until {_when(d['revoked_at'])} (v{d['revoked_in_version']}, {d['revoked_by']})"
            if d["revoked_at"]
            else "held now"
        )
        console.print(
            f"{d['member']:20} {d['role']:20} from {_when(d['granted_at'])}"
            f" (v{d['granted_in_version']}, {d['granted_by']}) {until}",
            markup=False,
        )


@policy_tests_app.command("add")
def policy_test_add(
    ctx: typer.Context,
    subject: str,
    object: str,
    action: str,
    expected: str = typer.Argument(..., help="allow or deny"),
    description: str = typer.Option("", help="What the case protects."),
) -> None:
    """Add a case; it must pass now and after every later change."""
    body = {
        "subject": subject,
        "object": object,
        "action": action,
        "expected": expected,
        "description": description,
    }
    doc = remote_of(ctx).json("POST", "/v1/policy/tests", json=body)
    console.print(f"policy test {doc['id']} added")


@policy_tests_app.command("remove")
def policy_test_remove(
    ctx: typer.Context,
    case_id: int = typer.Argument(..., min=1),
    reason: str = typer.Option(..., help="Why (audited)."),
) -> None:
    """Remove a case."""
    remote_of(ctx).call("DELETE", f"/v1/policy/tests/{case_id}", params={"reason": reason})
    console.print(f"policy test {case_id} removed")


@policy_tests_app.command("list")
def policy_test_list(ctx: typer.Context, as_json: bool = JSON) -> None:
    """The stored cases."""
    docs = [
        {k: d[k] for k in ("id", "subject", "object", "action", "expected", "description")}
        | {"created_by": d["created_by"]}
        for d in remote_of(ctx).json("GET", "/v1/policy/tests")
    ]
    if as_json:
        print_json(docs)
        return
    for d in docs:
        console.print(
            f"{d['id']:>4} {d['expected']:5} {d['subject']} {d['action']} "
            f"{d['object']}  {d['description']}",
            markup=False,
        )


@policy_tests_app.command("run")
def policy_test_run(
    ctx: typer.Context,
    version: int = typer.Option(
        None, min=1, help="Only the version the server enforces now (the API runs no other)."
    ),
    as_json: bool = JSON,
) -> None:
    """Run every case against the enforced version; exit 3 if any fails."""
    doc = remote_of(ctx).json("POST", "/v1/policy/tests/run")
    if version is not None and version != doc["policy_version"]:
        fail(
            f"the server enforces version {doc['policy_version']}; the API runs the tests "
            f"only on that one (run version {version} with `warden --local`)",
            ExitCode.USAGE,
        )
    failing = doc["failing"]
    if as_json:
        print_json(
            {
                "version": doc["policy_version"],
                "total": doc["total"],
                "passed": doc["passed"],
                "failing": failing,
            }
        )
    else:
        console.print(
            f"{doc['passed']}/{doc['total']} policy tests pass on version {doc['policy_version']}"
        )
        for case in failing:
            console.print(
                f"  FAIL test {case['id']}: ({case['subject']}, {case['object']}, "
                f"{case['action']}) expected {case['expected']}, got {case['actual']}",
                markup=False,
            )
    if failing:
        raise typer.Exit(ExitCode.REFUSED)


# -- fairness --------------------------------------------------------------------------------

fairness_app = typer.Typer(cls=RemoteGroup)
thresholds_app = typer.Typer(
    cls=RemoteGroup,
    help="Fairness thresholds: versioned, audited, used by the gate.",
    no_args_is_help=True,
)
fairness_app.add_typer(thresholds_app, name="thresholds")


def _features(value: str | None) -> list[str] | None:
    names = [v.strip() for v in (value or "").split(",") if v.strip()]
    return names or None


def _audit_json(doc: dict[str, Any]) -> dict[str, Any]:
    """An API audit in the shape of the direct-mode ``--json``."""
    return {
        "id": doc["id"],
        "created_at": doc["created_at"],
        "kind": doc["kind"],
        "model": doc["model"],
        "version": doc["model_version"],
        "passed": doc["passed"],
        "thresholds_version": doc["thresholds_version"],
        "sensitive": doc["sensitive"],
        "result": doc["result"],
        "verdict": {"passed": doc["passed"], "failures": doc["failures"]},
    }


def _show_audit(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(_audit_json(doc))
        return
    head = f"audit {doc['id']}: {doc['model']} {doc['model_version'] or '(all versions)'}"
    if doc["artifact_sha256"]:
        head += f" (artifact {doc['artifact_sha256'][:16]}…)"
    console.print(head, markup=False)
    source = (
        f"dataset {doc['dataset']} ({doc['split']} split)"
        if doc["kind"] == "dataset"
        else f"live outcomes {doc['window_start']} … {doc['window_end']}"
    )
    console.print(
        f"{source}, {doc['n_rows']} rows, engine {doc['engine']}, "
        f"thresholds v{doc['thresholds_version']}",
        markup=False,
    )
    print_audit_tables(console, doc["result"])
    console.print("verdict: PASS" if doc["passed"] else "verdict: FAIL")
    for f in doc["failures"]:
        console.print(f"  {f['feature']}: {f['reason']}", markup=False)


@fairness_app.command("audit")
def fairness_audit(
    ctx: typer.Context,
    model: str,
    dataset: str = typer.Option("adult", help="Dataset whose test split is predicted."),
    sensitive: str = typer.Option(None, help="Comma-separated attributes (default: all)."),
    version: str = typer.Option(None, help="Model version (default: serving, else newest)."),
    bootstrap: int = typer.Option(200, min=0, help="Bootstrap replicates for the 95% intervals."),
    seed: int = typer.Option(0, min=0, help="Bootstrap seed."),
    as_json: bool = typer.Option(False, "--json", help="Print the stored audit as JSON."),
) -> None:
    """Audit a registered model for bias and store the result (exit 3 when it fails)."""
    body: dict[str, Any] = {
        "model": model,
        "version": version,
        "dataset": dataset,
        "sensitive": _features(sensitive),
        "bootstrap": bootstrap,
        "seed": seed,
    }
    doc = remote_of(ctx).json("POST", "/v1/fairness/audits", json=body)
    _show_audit(doc, as_json)
    raise typer.Exit(ExitCode.OK if doc["passed"] else ExitCode.REFUSED)


@fairness_app.command("audits")
def fairness_audits(
    ctx: typer.Context,
    model: str = typer.Option(None),
    limit: int = typer.Option(20, min=1, max=1000),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List stored audits, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if model is not None:
        params["model"] = model
    docs = remote_of(ctx).json("GET", "/v1/fairness/audits", params=params)
    if as_json:
        print_json(
            [
                {
                    "id": d["id"],
                    "created_at": d["created_at"],
                    "kind": d["kind"],
                    "model": d["model"],
                    "version": d["model_version"],
                    "passed": d["passed"],
                    "thresholds_version": d["thresholds_version"],
                    "sensitive": d["sensitive"],
                }
                for d in docs
            ]
        )
        return
    if not docs:
        console.print("no fairness audits yet")
        return
    table = Table("id", "created (UTC)", "kind", "model", "version", "verdict", "thresholds")
    for d in docs:
        table.add_row(
            str(d["id"]),
            f"{datetime.fromisoformat(d['created_at']):%Y-%m-%d %H:%M}",
            d["kind"],
            d["model"],
            d["model_version"] or "-",
            "PASS" if d["passed"] else "FAIL",
            f"v{d['thresholds_version']} {', '.join(d['sensitive'])}",
        )
    console.print(table)


@fairness_app.command("show")
def fairness_show(
    ctx: typer.Context,
    audit_id: int = typer.Argument(..., min=1),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one stored audit."""
    _show_audit(remote_of(ctx).json("GET", f"/v1/fairness/audits/{audit_id}"), as_json)


@fairness_app.command("monitor")
def fairness_monitor(
    ctx: typer.Context,
    model: str,
    hours: float = typer.Option(24.0, help="Window: the last N hours (ignored with --since)."),
    since: datetime = typer.Option(None, help="Window start (UTC if no offset)."),
    until: datetime = typer.Option(None, help="Window end (default: now)."),
    version: str = typer.Option(None),
    sensitive: str = typer.Option(None, help="Comma-separated attributes (default: all seen)."),
    as_json: bool = typer.Option(False, "--json", help="Print the stored audit as JSON."),
) -> None:
    """Audit live predictions with reported outcomes in a time window."""

    def aware(moment: datetime) -> datetime:
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

    end = aware(until) if until else datetime.now(UTC)
    start = aware(since) if since else end - timedelta(hours=hours)
    body: dict[str, Any] = {
        "model": model,
        "version": version,
        "since": start.isoformat(),
        "until": end.isoformat(),
        "sensitive": _features(sensitive),
    }
    _show_audit(remote_of(ctx).json("POST", "/v1/fairness/monitor", json=body), as_json)


@fairness_app.command("mitigate")
def fairness_mitigate(
    ctx: typer.Context,
    model: str,
    sensitive: str = typer.Option(..., help="Attribute to equalise (a categorical input)."),
    dataset: str = typer.Option("adult"),
    version: str = typer.Option(None, help="Base version (default: serving, else newest)."),
    constraints: str = typer.Option("demographic_parity", help="Fairlearn constraint."),
    new_version: str = typer.Option(None, help="Default: <version>-mitigated."),
    plot_out: Path = typer.Option(None, help="Also write the trade-off PNG here."),
    epsilon: float = typer.Option(
        None,
        min=0.0,
        max=100.0,
        help="ε of the noisy release on a private dataset, charged to its privacy ledger.",
    ),
) -> None:
    """Fit ThresholdOptimizer post-processing; register it as a new model version."""
    body: dict[str, Any] = {
        "model": model,
        "version": version,
        "dataset": dataset,
        "sensitive": sensitive,
        "constraints": constraints,
        "new_version": new_version,
    }
    if epsilon is not None:
        body["epsilon"] = epsilon
    doc = remote_of(ctx).json("POST", "/v1/fairness/mitigations", json=body)
    sha = doc["artifact_sha256"]
    console.print(
        f"registered {doc['model']} {doc['version']} (from {doc['base_version']}; "
        f"artifact {sha[:16]}…)",
        markup=False,
    )
    console.print(f"privacy: {doc['privacy_claim'].get('statement', '')}", markup=False)
    numbers = doc["tradeoff"]
    console.print(tradeoff_table(numbers))
    console.print(f"plot: {doc['plot_file']} (on the server)", markup=False)
    if plot_out is not None:
        private_dir(plot_out.parent)
        with open_private(plot_out) as out:
            out.write(base64.b64decode(doc["plot_png_base64"]))
        console.print(f"plot written to {plot_out}", markup=False)


@thresholds_app.command("show")
def thresholds_show(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of YAML."),
) -> None:
    """Print the current thresholds document (YAML) and its version."""
    doc = remote_of(ctx).json("GET", "/v1/fairness/thresholds")
    if as_json:
        print_json({k: doc[k] for k in ("version", "author", "reason", "document")})
        return
    console.print(f"# version {doc['version']} by {doc['author']}: {doc['reason']}", markup=False)
    typer.echo(yaml.safe_dump(doc["document"], sort_keys=True))


@thresholds_app.command("set")
def thresholds_set(
    ctx: typer.Context,
    file: Path,
    reason: str = typer.Option(..., help="Why the thresholds change (recorded, audited)."),
    base_version: int = typer.Option(
        None, min=1, help="Refuse if the current version is not this."
    ),
) -> None:
    """Store FILE (policies/fairness.yaml shape) as the next thresholds version."""
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        fail(f"cannot read {file}: {type(exc).__name__}")
    if not isinstance(document, dict):
        fail(f"{file} is not a mapping")
    body: dict[str, Any] = {"document": document, "reason": reason}
    if base_version is not None:
        body["base_version"] = base_version
    doc = remote_of(ctx).json("PUT", "/v1/fairness/thresholds", json=body)
    console.print(f"fairness thresholds version {doc['version']}")
    typer.echo(json.dumps(doc["diff"], indent=2))


@thresholds_app.command("history")
def thresholds_history(
    ctx: typer.Context,
    limit: int = typer.Option(20, min=1, max=1000),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List threshold versions with author, reason and diff."""
    docs = remote_of(ctx).json("GET", "/v1/fairness/thresholds/versions", params={"limit": limit})
    if as_json:
        print_json(
            [{k: d[k] for k in ("version", "created_at", "author", "reason", "diff")} for d in docs]
        )
        return
    for d in docs:
        console.print(
            f"v{d['version']} {datetime.fromisoformat(d['created_at']):%Y-%m-%d %H:%M} "
            f"{d['author']}: {d['reason']}",
            markup=False,
        )
        console.print(f"    {json.dumps(d['diff'])}", markup=False)


# -- datasets and models --------------------------------------------------------------------

datasets_app = typer.Typer(cls=RemoteGroup)
models_app = typer.Typer(cls=RemoteGroup)


@datasets_app.command("register")
def datasets_register(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name to register the dataset under."),
    schema: str = typer.Option(
        ..., "--schema", help="The schema YAML on the server, relative to <data_dir>/datasets/."
    ),
    data: str = typer.Option(
        None, "--data", help="The data file on the server, relative to <data_dir>/datasets/."
    ),
    replace: bool = typer.Option(
        False, "--replace", help="Register again under an existing name (the ledger is kept)."
    ),
) -> None:
    """Validate a dataset already on the server against its schema and record its hashes."""
    body = {"name": name, "schema_path": schema, "data_path": data, "replace": replace}
    doc = remote_of(ctx).json("POST", "/v1/datasets", json=body)
    line = (
        f"registered {doc['name']}: {doc['train_rows']} train / {doc['test_rows']} test rows, "
        f"sha256 {doc['content_hash'][:16]}…"
    )
    for split, columns in (doc.get("values_clipped") or {}).items():
        counts = ", ".join(f"{column} {count}" for column, count in columns.items())
        line += f"\nclipped to the schema's bounds in {split}: {counts}"
    ledger = doc.get("ledger")
    if ledger is not None:
        spent = "unbounded" if ledger["epsilon_spent"] is None else f"{ledger['epsilon_spent']:.4g}"
        shared = ledger.get("shared_with") or []
        line += (
            f"\nprivacy ledger {ledger['id']} SHARED with {', '.join(shared)} "
            f"(the same rows): ε spent {spent} of {ledger['cap_epsilon']:g} over "
            f"{ledger['runs']} runs"
            if shared
            else f"\nprivacy ledger {ledger['id']}: ε spent {spent} of {ledger['cap_epsilon']:g}"
        )
    console.print(line, markup=False)


@datasets_app.command("show")
def datasets_show(ctx: typer.Context, name: str, as_json: bool = JSON) -> None:
    """Show a registered dataset: hashes, sizes, privacy ledger (`--json`: with its schema)."""
    doc = remote_of(ctx).json("GET", f"/v1/datasets/{_part(name)}")
    if as_json:
        print_json(doc)
        return
    show_fields(readable(doc))


@models_app.command("register")
def models_register(ctx: typer.Context, artifact_dir: Path) -> None:
    """Upload and register an artifact folder (manifest.json + the files it names)."""
    # Here, not at the top: the inference package imports torch, which no other remote
    # command needs.
    from inference.manifest import MANIFEST_FILE

    try:
        manifest = json.loads((artifact_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
        files = {
            p.name: base64.b64encode(p.read_bytes()).decode("ascii")
            for p in sorted(artifact_dir.iterdir())
            if p.is_file() and p.name != MANIFEST_FILE
        }
    except (OSError, ValueError) as exc:
        fail(f"cannot read the artifact in {artifact_dir}: {type(exc).__name__}")
    if not isinstance(manifest, dict):
        fail(f"{artifact_dir / MANIFEST_FILE} is not a JSON object")
    doc = remote_of(ctx).json("POST", "/v1/models", json={"manifest": manifest, "files": files})
    console.print(
        f"registered {doc['name']} {doc['version']} "
        f"(manifest sha256 {doc['artifact_sha256'][:16]}…)",
        markup=False,
    )


@models_app.command("import")
def models_import(
    ctx: typer.Context,
    name: str,
    version: str = typer.Option(..., help="The version to register."),
    onnx: Path = typer.Option(..., exists=True, dir_okay=False, help="The ONNX graph (.onnx)."),
    schema: Path = typer.Option(
        ..., exists=True, dir_okay=False, help="The import schema (YAML): features, output, card."
    ),
) -> None:
    """Import a model trained elsewhere: upload an ONNX graph; the server checks and runs it."""
    try:
        schema_text = schema.read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        fail(f"cannot read {schema}: {type(exc).__name__}")
    remote = remote_of(ctx)
    # The graph goes as a file object: httpx streams it in chunks, never whole in memory.
    with onnx.open("rb") as graph:
        doc = remote.json(
            "POST",
            "/v1/models/import",
            data={"name": name, "version": version, "schema": schema_text},
            files={"onnx": (onnx.name, graph, "application/octet-stream")},
        )
    console.print(
        f"imported {doc['name']} {doc['version']} (manifest sha256 {doc['artifact_sha256'][:16]}…)",
        markup=False,
    )


# -- registration ----------------------------------------------------------------------------

_EXTRA: dict[str, typer.Typer] = {
    "policy": policy_app,
    "fairness": fairness_app,
    "datasets": datasets_app,
    "models": models_app,
}


def extend(groups: dict[str, typer.Typer]) -> None:
    """Add this module's commands and sub-groups to the remote tree's groups of those names."""
    for name, extra in _EXTRA.items():
        groups[name].registered_commands.extend(extra.registered_commands)
        groups[name].registered_groups.extend(extra.registered_groups)


__all__ = ["extend"]
