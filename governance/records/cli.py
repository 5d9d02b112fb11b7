"""``warden records list|erase|purge|erasures``: stored records, erasure, retention."""

from __future__ import annotations

import json
import sys

import typer

from governance.cli.common import (
    JSON,
    console,
    errors_as_exit,
    open_engine,
    settings,
    show_rows,
    transaction,
)
from governance.db import make_sessionmaker
from governance.kit.context import cli_context
from governance.records.receipts import receipt_out
from governance.records.retention import load_retention
from governance.records.scrubs import Scrubs, scrub_status_for
from governance.records.service import records
from governance.records.subjects import load_subject_scopes
from governance.vault.kek_schedule import KekSchedule
from governance.vault.providers import ServiceKeyProvider, load_provider

# A command has no periodic tick: it retries a busy checkpoint this long, then leaves the
# scrub pending for a server's tick.
_SCRUB_WITHIN_S = 5.0

app = typer.Typer(
    help="Encrypted prediction records: list, erase subjects, purge.", no_args_is_help=True
)


def _keys() -> ServiceKeyProvider:
    cfg = settings()
    return load_provider(cfg.key_provider, path=cfg.resolved_key_file)


@app.command("list")
def list_(
    model: str = typer.Option(None, help="Only this model's records."),
    limit: int = typer.Option(50, min=1, max=10_000),
    as_json: bool = JSON,
) -> None:
    """List stored records (metadata only)."""
    with errors_as_exit(), transaction() as session:
        rows = [
            {
                "id": row.id,
                "created_at": row.created_at,
                "model": row.model,
                "version": row.model_version,
                # A prefix names the subject's reference; the whole one is no one's business here.
                "subject_ref": f"{row.subject_ref[:16]}…",
                "data_key": row.dek_id,
                "state": state,
            }
            for row, state in records.list(session, model=model, limit=limit)
        ]
    show_rows(rows, as_json=as_json, empty="no records")


@app.command("erase")
def erase(
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
    with errors_as_exit():
        cfg = settings()
        keys = _keys()
        scopes = load_subject_scopes(cfg.policies_dir)
        engine = open_engine(cfg)
        try:
            sessions = make_sessionmaker(engine)
            schedule = KekSchedule(
                sessions=sessions, keys=keys, period=cfg.kek_rotation_period, holder="cli"
            )
            with sessions.begin() as session:
                receipt = records.erase(
                    session,
                    cli_context(),
                    keys,
                    subject_id=subject_id,
                    scopes=scopes,
                    client=client,
                    namespace=namespace,
                    every_scope=all_clients,
                    scrub_status=scrub_status_for(engine),
                    kek_retire_by=schedule.retire_by(),
                )
                receipt_id = receipt.id
            Scrubs(engine, sessions).settle(within_s=_SCRUB_WITHIN_S)
            with sessions() as session:
                stored = records.receipt(session, receipt_id)
                view = receipt_out(
                    stored, records.scrub_of(session, receipt_id), dialect=engine.dialect.name
                )
        finally:
            engine.dispose()
        out = view.model_dump(mode="json")
    typer.echo(json.dumps(out, indent=2))


@app.command("purge")
def purge(dry_run: bool = typer.Option(False, help="Count only; delete nothing.")) -> None:
    """Delete records past their retention period (policies/retention.yaml); audited."""
    with errors_as_exit():
        policy = load_retention(settings().policies_dir)
        with transaction() as session:
            result = records.purge(session, cli_context(), policy, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    for model, count in sorted(result.deleted.items()):
        console.print(f"{model}: {verb} {count}")
    console.print(
        f"total {verb} {result.total} (audit entry {result.audit_seq}); audit entries "
        f"are kept at least {policy.audit_min_days} days"
    )


@app.command("erasures")
def erasures(limit: int = typer.Option(50, min=1, max=10_000), as_json: bool = JSON) -> None:
    """List erasure receipts."""
    with errors_as_exit(), transaction() as session:
        rows = [
            {
                "id": r.id,
                "erased_at": r.erased_at,
                "erased_by": r.erased_by,
                "keys": len(json.loads(r.dek_ids)),
                "records": r.records_affected,
            }
            for r in records.receipts(session, limit=limit)
        ]
    show_rows(rows, as_json=as_json, empty="no erasures")
