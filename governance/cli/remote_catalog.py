"""``warden models|fairness|datasets|privacy|report ...`` over the API, as the signed-in person."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer

from governance.cli.common import JSON, console, fail, print_json, show_rows
from governance.cli.routing import RemoteGroup, remote_of
from governance.private_files import open_private, private_dir

models_app = typer.Typer(
    cls=RemoteGroup, help="The model registry (over the API).", no_args_is_help=True
)
fairness_app = typer.Typer(
    cls=RemoteGroup,
    help="The deployment gate and its overrides (over the API).",
    no_args_is_help=True,
)
datasets_app = typer.Typer(
    cls=RemoteGroup, help="The dataset registry (over the API).", no_args_is_help=True
)
privacy_app = typer.Typer(
    cls=RemoteGroup, help="Privacy budgets (over the API).", no_args_is_help=True
)
report_app = typer.Typer(
    cls=RemoteGroup,
    help="Compliance reports (over the API): `warden report --from X --to Y` generates one.",
    invoke_without_command=True,
)


def _part(text: str) -> str:
    return quote(text, safe="")


@models_app.command("list")
def models_list(ctx: typer.Context, as_json: bool = JSON) -> None:
    """List model versions and stages."""
    docs = remote_of(ctx).json("GET", "/v1/models")
    rows = [
        {
            "name": d["name"],
            "version": d["version"],
            "stage": d["stage"],
            "artifact_sha256": d["artifact_sha256"],
        }
        for d in docs
    ]
    show_rows(rows, as_json=as_json, empty="no models registered")


@models_app.command("promote")
def models_promote(
    ctx: typer.Context,
    name: str,
    version: str = typer.Option(..., "--version", help="The version to serve."),
) -> None:
    """Approve a version for serving (promotion gates apply; exit 3 when one refuses)."""
    remote_of(ctx).call("POST", f"/v1/models/{_part(name)}/versions/{_part(version)}/promote")
    console.print(f"{name} {version} is serving", markup=False)


@fairness_app.command("gate")
def fairness_gate(
    ctx: typer.Context,
    model: str,
    version: str = typer.Option(..., "--version", help="The version."),
) -> None:
    """A version's fairness gate: passed, failed or overridden."""
    print_json(remote_of(ctx).json("GET", f"/v1/fairness/gate/{_part(model)}/{_part(version)}"))


@fairness_app.command("override")
def fairness_override(
    ctx: typer.Context,
    model: str,
    version: str = typer.Option(..., "--version", help="The version approved."),
    justification: str = typer.Option(..., help="Why this version may serve despite failing."),
) -> None:
    """Approve a version that fails the gate, as the signed-in compliance officer."""
    body = {"model": model, "version": version, "justification": justification}
    doc = remote_of(ctx).json("POST", "/v1/fairness/overrides", json=body)
    console.print(
        f"override {doc.get('id')} recorded: {model} {version} may be promoted", markup=False
    )


@datasets_app.command("list")
def datasets_list(ctx: typer.Context, as_json: bool = JSON) -> None:
    """List registered datasets."""
    docs = remote_of(ctx).json("GET", "/v1/datasets")
    rows = [
        {
            "name": d["name"],
            "train_rows": d["train_rows"],
            "test_rows": d["test_rows"],
            "content_hash": d["content_hash"],
            "registered_by": "bundled" if d["bundled"] else d["registered_by"],
        }
        for d in docs
    ]
    show_rows(rows, as_json=as_json, empty="no datasets registered")


@privacy_app.command("ledger")
def privacy_ledger(ctx: typer.Context, dataset: str, as_json: bool = JSON) -> None:
    """A dataset's privacy budget: cap, ε spent, each run."""
    doc = remote_of(ctx).json("GET", f"/v1/privacy/ledger/{_part(dataset)}")
    if as_json:
        print_json(doc)
        return
    cap = doc["cap"]
    console.print(
        f"{doc['dataset']}: cap ε = {cap['epsilon']:g} at δ = {cap['delta']:g}; "
        f"spent ε = {doc['epsilon_recomposed']} recomposed, {doc['epsilon_naive']} summed; "
        f"remaining {doc['remaining']:.3f}",
        markup=False,
    )
    for e in doc.get("entries", []):
        console.print(
            f"  run {e['run']:>4} {e['dataset']:12} {e['status']:10} ε={e['epsilon']}",
            markup=False,
        )


def _utc_text(value: str, what: str) -> str:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--{what} must be an ISO 8601 date or time, e.g. 2025-01-31", 2)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).isoformat()


@report_app.callback()
def report_default(
    ctx: typer.Context,
    period_from: str = typer.Option(None, "--from", help="Period start (ISO 8601)."),
    period_to: str = typer.Option(None, "--to", help="Period end, exclusive (default now)."),
    model: str = typer.Option(None, "--model", help="Only this model's evidence."),
) -> None:
    """The older spelling `warden report --from X --to Y`: generate a report."""
    if ctx.invoked_subcommand is not None:
        return
    if period_from is None:
        console.print(ctx.get_help())
        raise typer.Exit(2)
    _generate(ctx, period_from, period_to, model, None, as_json=False)


@report_app.command("generate")
def report_generate(
    ctx: typer.Context,
    period_from: str = typer.Option(..., "--from", help="Period start (ISO 8601)."),
    period_to: str = typer.Option(None, "--to", help="Period end, exclusive (default now)."),
    model: str = typer.Option(None, "--model", help="Only this model's evidence."),
    framework: list[str] = typer.Option(
        None, "--framework", help="Map only to this framework (repeatable)."
    ),
    as_json: bool = JSON,
) -> None:
    """Generate a signed report on the server."""
    _generate(ctx, period_from, period_to, model, framework, as_json=as_json)


def _generate(
    ctx: typer.Context,
    period_from: str,
    period_to: str | None,
    model: str | None,
    framework: list[str] | None,
    *,
    as_json: bool,
) -> None:
    body: dict[str, Any] = {
        "from": _utc_text(period_from, "from"),
        "to": _utc_text(period_to, "to") if period_to else datetime.now(UTC).isoformat(),
    }
    if model is not None:
        body["model"] = model
    if framework:
        body["frameworks"] = list(framework)
    doc = remote_of(ctx).json("POST", "/v1/reports", json=body)
    if as_json:
        print_json(doc)
        return
    console.print(
        f"report {doc['id']} ({', '.join(doc['files'])}); download with "
        f"`warden report download {doc['id']}`",
        markup=False,
    )


@report_app.command("list")
def report_list(ctx: typer.Context, as_json: bool = JSON) -> None:
    """Generated reports, newest first."""
    docs = remote_of(ctx).json("GET", "/v1/reports")
    rows = [
        {
            "id": d["id"],
            "from": d["period_from"],
            "to": d["period_to"],
            "model": d["model"],
            "generated_by": d["generated_by"],
        }
        for d in docs
    ]
    show_rows(rows, as_json=as_json, empty="no reports")


@report_app.command("download")
def report_download(
    ctx: typer.Context,
    report_id: str,
    into: Path = typer.Option(
        None, "--into", help="Folder to write the files into (default ./<report id>)."
    ),
) -> None:
    """Download every file of a report (check it with `warden report verify FOLDER --key K`)."""
    remote = remote_of(ctx)
    doc = remote.json("GET", f"/v1/reports/{_part(report_id)}")
    folder = private_dir(into or Path(doc["id"]))
    for name in doc["files"]:
        response = remote.call("GET", f"/v1/reports/{_part(doc['id'])}/files/{_part(name)}")
        with open_private(folder / Path(name).name) as out:
            out.write(response.content)
    console.print(f"{len(doc['files'])} files of report {doc['id']} in {folder}", markup=False)
