"""``warden fairness audit|audits|show|gate|override|mitigate|monitor|thresholds``.

Importing this module registers the fairness promotion gate (the registry imports it before
every promotion all the same). Commands run as the local operator.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.table import Table

from governance.cli.common import (
    ExitCode,
    chosen_version,
    console,
    errors_as_exit,
    print_json,
    settings,
    transaction,
    working,
)
from governance.db.base import DB_INT_MAX, as_utc
from governance.fairness.display import print_audit_tables, tradeoff_table
from governance.fairness.errors import FairnessPolicyError
from governance.fairness.gate import gate_status, overrides
from governance.fairness.models import FairnessAudit
from governance.fairness.schemas import BOOTSTRAP_MAX, SEED_MAX
from governance.fairness.service import fairness
from governance.fairness.thresholds.versions import thresholds_store
from governance.kit.context import cli_context
from governance.private_files import copy_private
from governance.registry.service import registry

app = typer.Typer(
    help="Bias audits, the deployment gate, mitigation, live monitoring.", no_args_is_help=True
)
thresholds_app = typer.Typer(help="The fairness thresholds (versioned).", no_args_is_help=True)
app.add_typer(thresholds_app, name="thresholds")


_VERSION_HELP = "Model version (default: serving, else newest)."


def _features(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    return names or None


def _print_audit(row: FairnessAudit) -> None:
    result = json.loads(row.result)
    verdict = json.loads(row.verdict)
    head = f"audit {row.id}: {row.model} {row.model_version or '(all versions)'}"
    if row.artifact_sha256:
        head += f" (artifact {row.artifact_sha256[:16]}…)"
    console.print(head)
    source = (
        f"dataset {row.dataset} ({row.split} split)"
        if row.kind == "dataset"
        else f"live outcomes {row.window_start} … {row.window_end}"
    )
    console.print(
        f"{source}, {row.n_rows} rows, engine {row.engine}, thresholds v{row.thresholds_version}"
    )
    print_audit_tables(console, result)
    if verdict["passed"]:
        console.print("[green]verdict: PASS[/green]")
    else:
        console.print("[red]verdict: FAIL[/red]")
        for f in verdict["failures"]:
            console.print(f"  {f['feature']}: {f['reason']}", markup=False)


@app.command("audit")
def audit(
    model: str,
    dataset: str = typer.Option("adult", help="Dataset whose test split is predicted."),
    sensitive: str = typer.Option(None, help="Comma-separated attributes (default: all)."),
    version: str = typer.Option(None, help="Model version (default: serving, else newest)."),
    bootstrap: int = typer.Option(
        200, min=0, max=BOOTSTRAP_MAX, help="Bootstrap replicates for the 95% intervals."
    ),
    seed: int = typer.Option(0, min=0, max=SEED_MAX, help="Bootstrap seed."),
    as_json: bool = typer.Option(False, "--json", help="Print the stored audit as JSON."),
) -> None:
    """Audit a registered model for bias and store the result (exit 3 when it fails)."""
    cfg = settings()
    with errors_as_exit(), transaction(cfg) as session:
        with working(f"bias audit of {model}"):
            row = fairness.audit_model(
                session,
                cli_context(),
                model=model,
                version=version,
                dataset=dataset,
                sensitive=_features(sensitive),
                bootstrap=bootstrap,
                seed=seed,
                policies_dir=cfg.policies_dir,
            )
        _show_audit(row, as_json)
        passed = row.passed
    raise typer.Exit(ExitCode.OK if passed else ExitCode.REFUSED)


def _show_audit(row: FairnessAudit, as_json: bool) -> None:
    if as_json:
        print_json(_audit_json(row))
    else:
        _print_audit(row)


def _audit_json(row: FairnessAudit) -> dict[str, Any]:
    return {
        "id": row.id,
        "created_at": row.created_at,
        "kind": row.kind,
        "model": row.model,
        "version": row.model_version,
        "passed": row.passed,
        "thresholds_version": row.thresholds_version,
        "sensitive": json.loads(row.sensitive),
        "result": json.loads(row.result),
        "verdict": json.loads(row.verdict),
    }


@app.command("audits")
def audits(
    model: str = typer.Option(None),
    limit: int = typer.Option(20, min=1, max=1000),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List stored audits, newest first."""
    with errors_as_exit(), transaction() as session:
        rows = list(fairness.list_audits(session, model=model, limit=limit))
        if as_json:
            print_json(
                [
                    {k: v for k, v in _audit_json(r).items() if k not in ("result", "verdict")}
                    for r in rows
                ]
            )
            return
        if not rows:
            console.print("no fairness audits yet")
            return
        table = Table("id", "created (UTC)", "kind", "model", "version", "verdict", "thresholds")
        for row in rows:
            table.add_row(
                str(row.id),
                f"{row.created_at:%Y-%m-%d %H:%M}",
                row.kind,
                row.model,
                row.model_version or "-",
                "PASS" if row.passed else "FAIL",
                f"v{row.thresholds_version} {', '.join(json.loads(row.sensitive))}",
            )
        console.print(table)


@app.command("show")
def show(
    audit_id: int = typer.Argument(..., min=1, max=DB_INT_MAX),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one stored audit."""
    with errors_as_exit(), transaction() as session:
        _show_audit(fairness.get(session, audit_id), as_json)


@app.command("gate")
def gate(
    model: str,
    version: str = typer.Option(None, "--version", help=_VERSION_HELP),
    positional: str = typer.Argument(None, hidden=True, metavar="{version}"),
    as_json: bool = typer.Option(False, "--json", help="Print the decision as JSON."),
) -> None:
    """What the fairness gate would decide for a version now (exit 3 when it would refuse)."""
    chosen = chosen_version(version, positional)
    with errors_as_exit(), transaction() as session:
        row = registry.get(session, model, chosen)
        name, resolved = row.name, row.version
        status = gate_status(session, row)
    if as_json:
        print_json({"model": name, "version": resolved, **status.to_dict()})
    else:
        verdict = "[green]passes[/green]" if status.passed else "[red]refuses[/red]"
        console.print(f"{name} {resolved}: the gate {verdict} (basis {status.basis})")
        for f in status.failures:
            console.print(f"  {f['feature']}: {f['reason']}", markup=False)
    raise typer.Exit(ExitCode.OK if status.passed else ExitCode.REFUSED)


@app.command("override")
def override(
    model: str,
    version: str = typer.Option(None, "--version", help="The version approved (required)."),
    positional: str = typer.Argument(None, hidden=True, metavar="{version}"),
    justification: str = typer.Option(..., help="Why this version may serve despite failing."),
    by: str = typer.Option(..., help="The approving compliance officer (recorded)."),
) -> None:
    """Approve a version that fails the gate (as a named compliance officer)."""
    version = chosen_version(version, positional, required=True) or ""
    with errors_as_exit(), transaction() as session:
        row = overrides.override(
            session, cli_context(by), model=model, version=version, justification=justification
        )
        override_id = row.id
    console.print(f"override {override_id} recorded: {model} {version} may be promoted")


@app.command("mitigate")
def mitigate(
    model: str,
    sensitive: str = typer.Option(..., help="Attribute to equalise (a categorical input)."),
    dataset: str = typer.Option("adult"),
    version: str = typer.Option(None, help="Base version (default: serving, else newest)."),
    constraints: str = typer.Option("demographic_parity", help="Fairlearn constraint."),
    new_version: str = typer.Option(None, help="Default: <version>-mitigated."),
    plot_out: Path = typer.Option(None, help="Also copy the trade-off PNG here."),
    epsilon: float = typer.Option(
        None,
        min=0.0,
        max=100.0,
        help="ε of the noisy release on a private dataset, charged to its privacy ledger "
        "(default: mitigation.epsilon of policies/privacy.yaml).",
    ),
) -> None:
    """Fit ThresholdOptimizer post-processing; register it as a new model version.

    On private rows the thresholds are fitted from noisy per-group score histograms (the
    Gaussian mechanism), charged to the dataset's privacy ledger and composed with the base
    model's training run in the new version's claim."""
    from governance.audit import log as audit_log
    from governance.fairness.mitigation.budget import refusal_event
    from governance.fairness.mitigation.new_version import mitigator
    from governance.privacy.ledger import BudgetExceeded

    cfg = settings()
    ctx = cli_context()
    with errors_as_exit():
        try:
            with transaction(cfg) as session, working(f"mitigating {model}"):
                out = mitigator.mitigate(
                    session,
                    ctx,
                    model=model,
                    version=version,
                    dataset=dataset,
                    sensitive=sensitive,
                    constraints=constraints,  # type: ignore[arg-type]
                    new_version=new_version,
                    models_dir=cfg.resolved_models_dir,
                    policies_dir=cfg.policies_dir,
                    epsilon=epsilon,
                )
                name, base, new, sha = (
                    out.version.name,
                    out.base.version,
                    out.version.version,
                    out.version.artifact_sha256,
                )
                numbers, plot, claim = out.tradeoff, out.plot_path, out.claim["statement"]
        except BudgetExceeded as exc:
            # The refused transaction rolled back; the refusal itself is evidence.
            with transaction(cfg) as session:
                event = refusal_event(ctx, exc, dataset=dataset, model=model, base_version=version)
                audit_log.append(session, [event])
            raise
    console.print(f"registered {name} {new} (from {base}; artifact {sha[:16]}…)")
    console.print(f"privacy: {claim}")
    console.print(tradeoff_table(numbers))
    console.print(f"plot: {plot}")
    if plot_out is not None:
        copy_private(plot, plot_out)
        console.print(f"plot copied to {plot_out}")


@app.command("monitor")
def monitor_cmd(
    model: str,
    hours: float = typer.Option(24.0, help="Window: the last N hours (ignored with --since)."),
    since: datetime = typer.Option(None, help="Window start (UTC if no offset)."),
    until: datetime = typer.Option(None, help="Window end (default: now)."),
    version: str = typer.Option(None),
    sensitive: str = typer.Option(None, help="Comma-separated attributes (default: all seen)."),
    as_json: bool = typer.Option(False, "--json", help="Print the stored audit as JSON."),
) -> None:
    """Audit live predictions with reported outcomes in a time window."""
    from governance.fairness.monitoring import monitor

    def aware(moment: datetime) -> datetime:
        try:
            return as_utc(moment)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None

    end = aware(until) if until else datetime.now(UTC)
    start = aware(since) if since else end - timedelta(hours=hours)
    cfg = settings()
    with errors_as_exit(), transaction(cfg) as session:
        row = monitor(
            session,
            cli_context(),
            model=model,
            since=start,
            until=end,
            version=version,
            sensitive=_features(sensitive),
            policies_dir=cfg.policies_dir,
        )
        _show_audit(row, as_json)


@thresholds_app.command("show")
def thresholds_show(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of YAML."),
) -> None:
    """Print the current thresholds document (YAML) and its version."""
    cfg = settings()
    with errors_as_exit(), transaction(cfg) as session:
        row = thresholds_store.current(session, policies_dir=cfg.policies_dir)
        version, author, reason, document = row.version, row.author, row.reason, row.document
    if as_json:
        doc = json.loads(document)
        print_json({"version": version, "author": author, "reason": reason, "document": doc})
        return
    console.print(f"# version {version} by {author}: {reason}", markup=False)
    typer.echo(yaml.safe_dump(json.loads(document), sort_keys=True))


@thresholds_app.command("set")
def thresholds_set(
    file: Path,
    reason: str = typer.Option(..., help="Why the thresholds change (recorded, audited)."),
    by: str | None = typer.Option(
        None, help="Who makes the change, recorded (default: the local operator)."
    ),
    base_version: int = typer.Option(
        None, min=1, max=DB_INT_MAX, help="Refuse if the current version is not this."
    ),
) -> None:
    """Store FILE (policies/fairness.yaml shape) as the next thresholds version."""
    cfg = settings()
    with errors_as_exit():
        try:
            document = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise FairnessPolicyError(
                f"cannot read {file}: {type(exc).__name__}", status_code=422
            ) from None
        if not isinstance(document, dict):
            raise FairnessPolicyError(f"{file} is not a mapping", status_code=422)
        with transaction(cfg) as session:
            row = thresholds_store.update(
                session,
                cli_context(by),
                document=document,
                reason=reason,
                base_version=base_version,
                policies_dir=cfg.policies_dir,
            )
            version, diff = row.version, json.loads(row.diff)
    console.print(f"fairness thresholds version {version}")
    console.print(json.dumps(diff, indent=2))


@thresholds_app.command("history")
def thresholds_history(
    limit: int = typer.Option(20, min=1, max=1000),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List threshold versions with author, reason and diff."""
    cfg = settings()
    with errors_as_exit(), transaction(cfg) as session:
        thresholds_store.current(session, policies_dir=cfg.policies_dir)
        rows = list(thresholds_store.history(session, limit=limit))
        if as_json:
            print_json(
                [
                    {
                        "version": r.version,
                        "created_at": r.created_at,
                        "author": r.author,
                        "reason": r.reason,
                        "diff": json.loads(r.diff),
                    }
                    for r in rows
                ]
            )
            return
        for row in rows:
            console.print(
                f"v{row.version} {row.created_at:%Y-%m-%d %H:%M} {row.author}: {row.reason}",
                markup=False,
            )
            console.print(f"    {row.diff}", markup=False)
