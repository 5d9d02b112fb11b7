"""``warden report``: generate a signed compliance report, or verify a report folder.

warden report --from 2025-01-01 --to 2025-04-01 [--model credit]
warden report verify audit_reports/rpt-...   [--key VKEY_OR_FILE]
"""

from __future__ import annotations

from datetime import datetime

import typer

from governance.audit.checkpoints import Checkpointer
from governance.audit.log import tree_size
from governance.audit.repository import snapshot_session
from governance.audit.signing import load_signing_key
from governance.cli.common import (
    console,
    errors_as_exit,
    settings,
    transaction,
    working,
)
from governance.db.base import as_utc, utcnow
from governance.kit.context import cli_context
from governance.reports.cli_verify import verify
from governance.reports.errors import InvalidPeriod
from governance.reports.service import reports

app = typer.Typer(
    help="Compliance reports: `warden report --from X --to Y` generates one; "
    "`warden report verify DIR` checks one.",
    invoke_without_command=True,
)


def parse_time(value: str, what: str) -> datetime:
    """An ISO 8601 date or time; without a zone it is read as UTC.

    Raises:
        InvalidPeriod: not ISO 8601.
    """
    try:
        return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        raise InvalidPeriod(f"--{what} must be an ISO 8601 date or time, e.g. 2025-01-31") from None


def generate_report(
    period_from: str,
    period_to: str | None,
    model: str | None,
    verify_log: bool = True,
    frameworks: list[str] | None = None,
) -> None:
    """Generate a report as the local operator and record the export in the audit log."""
    cfg = settings()
    with errors_as_exit():
        start = parse_time(period_from, "from")
        end = parse_time(period_to, "to") if period_to else utcnow()
        key = load_signing_key(cfg.resolved_signing_key_file)
        ctx = cli_context()
        # Every report is anchored at a head signed now (refused if the log does not extend
        # the signer's last checkpoint); its range ends at that head.
        with transaction(cfg) as session:
            anchor_size = tree_size(session)
            Checkpointer.from_settings(cfg).checkpoint(session, force=True)
        # On stderr and only on a terminal: stdout keeps the report's summary alone.
        with working("verifying the audit log and building the report"):
            with snapshot_session(cfg.resolved_database_url) as snapshot:
                generated = reports.generate(
                    snapshot,
                    cfg,
                    ctx,
                    signing_key=key,
                    start=start,
                    end=end,
                    model=model,
                    verify=verify_log,
                    anchor_size=anchor_size,
                    frameworks=frameworks or None,
                )
            with transaction(cfg) as session:
                seq = reports.record_export(session, ctx, generated)
    meta = generated.report.meta
    verification = meta.audit_log.verification
    console.print(f"report        {meta.id}")
    console.print(f"folder        {generated.folder}")
    console.print(f"entries       {meta.audit_log.entries_in_period} in the period")
    console.print(
        "log           verified"
        if verification.verified
        else f"log           [red]NOT verified[/red]: {verification.error}"
    )
    summary = generated.report.summary
    console.print(f"findings      {len(summary.findings)}")
    console.print(f"manifest      sha256 {generated.manifest_sha256}")
    console.print(f"audit seq     {seq}")


@app.callback()
def main(
    ctx: typer.Context,
    period_from: str = typer.Option(
        None, "--from", help="Period start (ISO 8601, UTC if no zone)."
    ),
    period_to: str = typer.Option(None, "--to", help="Period end, exclusive (default now)."),
    model: str = typer.Option(None, "--model", help="Only this model's evidence."),
    framework: list[str] = typer.Option(
        None,
        "--framework",
        help="Map only to this framework (repeatable): a file name under policies/frameworks/.",
    ),
) -> None:
    """Generate a report over --from/--to, or run a subcommand."""
    if ctx.invoked_subcommand is not None:
        return
    if period_from is None:
        console.print(ctx.get_help())
        raise typer.Exit(2)
    generate_report(period_from, period_to, model, frameworks=framework)


@app.command("generate")
def generate(
    period_from: str = typer.Option(..., "--from", help="Period start (ISO 8601)."),
    period_to: str = typer.Option(None, "--to", help="Period end, exclusive (default now)."),
    model: str = typer.Option(None, "--model", help="Only this model's evidence."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Skip verifying the whole log."),
    framework: list[str] = typer.Option(
        None, "--framework", help="Map only to this framework (repeatable)."
    ),
) -> None:
    """Generate a signed report (same as `warden report --from ... --to ...`)."""
    generate_report(period_from, period_to, model, verify_log=not no_verify, frameworks=framework)


app.command("verify")(verify)
