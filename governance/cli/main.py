"""``warden``: the operator's command line.

After ``warden login --server URL`` (or with ``--server`` / ``WARDEN_SERVER``) commands run over
the API as the signed-in person (governance/cli/routing.py). Without one, or with ``--local``,
they write the database directly, for bootstrap and recovery: audited like API calls, as the
local operator ``local:<OS user>``.
"""

from __future__ import annotations

import typer
from rich.markup import escape

from governance.cli.common import console, errors_as_exit, print_json, settings, transaction
from governance.cli.lazy import Lazy
from governance.cli.routing import RoutedGroup
from governance.cli.sign_in import login, logout, whoami
from governance.privacy.kinds import EPOCHS_MAX
from governance.private_files import restrict_umask

# Each domain's ``cli`` module, imported only when its command runs (governance/cli/lazy.py):
# they import the domains' services and torch, which `--help` and remote commands never need.
LAZY_COMMANDS = {
    # The spelling: `warden train --dataset adult --model mlp --epsilon 1 ...`.
    "train": Lazy(
        "governance.privacy.cli",
        "Train a model under the dataset's privacy budget, with a progress bar.",
        command="train_command",
    ),
    "principals": Lazy("governance.identity.cli_principals", "Principals: users and services."),
    "keys": Lazy("governance.identity.cli_keys", "API keys: shown once, stored as hashes."),
    "roles": Lazy(
        "governance.identity.cli_roles",
        "Grant and revoke roles (each change is a new policy version).",
    ),
    "models": Lazy("governance.registry.cli", "The model registry."),
    "policy": Lazy(
        "governance.policy.cli", "The access policy: versions, changes, tests, impact, approvals."
    ),
    "audit": Lazy("governance.audit.cli", "The tamper-evident audit log."),
    "records": Lazy(
        "governance.records.cli", "Encrypted prediction records: list, erase subjects, purge."
    ),
    "vault": Lazy("governance.vault.cli", "Key management: data keys, the KEK, rotation."),
    "datasets": Lazy("governance.datasets.cli", "The dataset registry."),
    "privacy": Lazy("governance.privacy.cli", "Privacy budgets and training runs."),
    "fairness": Lazy(
        "governance.fairness.cli",
        "Bias audits, the deployment gate, mitigation, live monitoring.",
    ),
    "report": Lazy(
        "governance.reports.cli",
        "Compliance reports: `warden report --from X --to Y` generates one; "
        "`warden report verify DIR` checks one.",
    ),
    "witness": Lazy("governance.witness.cli", "An outside witness that cosigns checkpoints."),
}


class WardenRoot(RoutedGroup):
    """``warden``: the commands above load their module when run."""

    lazy = LAZY_COMMANDS


app = typer.Typer(
    cls=WardenRoot,
    help="Warden: governance for AI models served as an API. Exit codes: 0 ok, 1 error, "
    "2 usage, 3 refused by a rule, 4 verification failed (docs/cli.md).",
    no_args_is_help=True,
    # An expected error is one line (governance/cli/common.py); anything else is a bug, and
    # its plain traceback should not print local variables, which may hold keys.
    pretty_exceptions_show_locals=False,
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"warden {version('warden')}")
        raise typer.Exit()


@app.callback()
def _private_files(
    _version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version."
    ),
    # Read by RoutedGroup when it resolves the command (governance/cli/routing.py).
    server: str = typer.Option(
        None,
        "--server",
        help="Run over this server's API as the person signed in (default WARDEN_SERVER, "
        "else the server of `warden login`).",
    ),
    local: bool = typer.Option(
        False, "--local", help="Direct database mode on the server machine (bootstrap, recovery)."
    ),
) -> None:
    # Before any command runs: whatever it writes (database, WAL, server log, artifacts,
    # reports, the demo folder) is 0600 in 0700 folders, and the journal writer inherits it.
    restrict_umask()
    quiet_handled_warnings()


app.command("login")(login)
app.command("logout")(logout)
app.command("whoami")(whoami)


@app.command()
def init(
    admin: str = typer.Option("admin", help="Name of the first admin principal."),
    officer: str = typer.Option(
        None, help="Also appoint this person the first compliance officer (prints their code)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Create keys, run migrations, write policy v1, and print the first admin key once."""
    from governance.audit.checkpoints import Checkpointer
    from governance.bootstrap import initialize

    cfg = settings()
    with errors_as_exit():
        result = initialize(cfg, admin_name=admin, officer_name=officer)
        # The bootstrap entries signed at once: `warden audit verify` passes from the start.
        with transaction(cfg) as session:
            Checkpointer.from_settings(cfg).checkpoint(session, force=True)
    if as_json:
        print_json(
            {
                "database": result.database_url,
                "key_file": str(result.key_file),
                "signing_key_file": str(result.signing_key_file),
                "log_key": result.vkey,
                "admin": result.admin_name,
                "admin_key_id": result.admin_key_id,
                "admin_token": result.admin_token,
                "officer": result.officer_name,
                "officer_code": result.officer_code,
            }
        )
        return
    console.print(f"database      {result.database_url}")
    console.print(f"key file      {result.key_file} (0600)")
    console.print(f"signing key   {result.signing_key_file} (0600)")
    console.print(f"log key       {result.vkey}")
    console.print(f"admin         {result.admin_name} (key id {result.admin_key_id})")
    console.print("[bold]admin API key (shown once, store it now):[/bold]")
    typer.echo(result.admin_token)
    if result.officer_code is not None:
        console.print(
            f"[bold]enrolment code of the first compliance officer {result.officer_name} "
            "(shown once; give it to them only, they redeem it with POST /v1/enrol):[/bold]"
        )
        typer.echo(result.officer_code)


@app.command()
def serve(
    host: str = typer.Option(None, help="Bind address (default WARDEN_HOST)."),
    port: int = typer.Option(None, min=0, max=65535, help="Port (default WARDEN_PORT)."),
) -> None:
    """Run the API server (uvicorn, one process)."""
    import uvicorn

    from governance.api.app import create_app
    from governance.api.server_limits import uvicorn_options
    from governance.logs import configure_logging

    cfg = settings()
    configure_logging(json_lines=cfg.log_json)
    with errors_as_exit():
        application = create_app(cfg, freeze_heap=True)
    uvicorn.run(
        application,
        host=host or cfg.host,
        port=port or cfg.port,
        # The bounded protocol, no WebSocket, and the logging set up above.
        **uvicorn_options(cfg),
        # uvicorn would take X-Forwarded-For from 127.0.0.1 as the client's address; Warden
        # reads it only from WARDEN_TRUSTED_PROXIES (governance/kit/forwarded.py).
        proxy_headers=False,
    )


@app.command()
def demo(
    epochs: int = typer.Option(10, min=1, max=EPOCHS_MAX, help="DP training epochs."),
    keep_serving: bool = typer.Option(False, help="Leave the server running at the end."),
) -> None:
    """Run the whole story on SQLite, a local key file and the bundled Adult data."""
    from governance.cli.demo import DemoError, run_demo

    try:
        result = run_demo(epochs=epochs, say=console.print, keep=keep_serving)
    except DemoError as exc:
        console.print(f"[red]demo failed:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    console.print("\n[bold]What the demo wrote[/bold]")
    console.print(f"  data, keys, SQLite database, server log: {result.data_dir}")
    console.print(f"  model artifacts: {result.data_dir / 'models' / 'adult-mlp'}")
    console.print(f"  compliance report: {result.report_dir}")
    console.print("  the server was stopped" if not keep_serving else "  the server is running")


def quiet_handled_warnings() -> None:
    """Silence what Opacus and torch warn about where Warden already handles it."""
    import warnings

    # Warden draws the mechanism's noise from OS entropy itself (governance/randomness.py).
    warnings.filterwarnings("ignore", message="Secure RNG turned off")
    # The per-sample gradient hooks Opacus installs; Warden's models are built for them.
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    # The RDP accountant's alpha grid; Warden states the PRV/PLD epsilon, not the RDP one.
    warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")


if __name__ == "__main__":
    app()
