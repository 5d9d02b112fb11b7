"""``warden witness init | serve | vkey`` (the witness's machine) and ``cosign`` (the log's).

A witness needs no Warden database, key file or settings: only its own folder (``--state``)
and the verifier keys of the logs it witnesses.
"""

from __future__ import annotations

from pathlib import Path

import typer

from governance.audit.errors import AuditVerificationError
from governance.audit.note import parse_vkey
from governance.cli.common import errors_as_exit, settings
from governance.errors import BadRequest

app = typer.Typer(help="An outside witness that cosigns checkpoints.", no_args_is_help=True)

_STATE = typer.Option(..., "--state", help="The witness's own folder (key, name, state).")


@app.command("init")
def init(
    name: str = typer.Option(..., help="Cosigner name, e.g. witness.example.org/w1."),
    state: Path = _STATE,
) -> None:
    """Create the witness's key and name; print its verifier key for log operators."""
    from governance.witness.identity import init_witness

    with errors_as_exit():
        identity = init_witness(state, name)
    typer.echo(identity.vkey)


@app.command("vkey")
def vkey(state: Path = _STATE) -> None:
    """Print the witness's cosigner verifier key."""
    from governance.witness.identity import load_witness

    with errors_as_exit():
        typer.echo(load_witness(state).vkey)


@app.command("serve")
def serve(
    log_vkey: list[str] = typer.Option(
        ..., "--log-vkey", help="Verifier key of a log to witness (repeat for several)."
    ),
    state: Path = _STATE,
    host: str = typer.Option("127.0.0.1", help="Bind address."),
    port: int = typer.Option(8700, min=1, max=65535, help="Port."),
) -> None:
    """Serve c2sp.org/tlog-witness add-checkpoint for the given logs."""
    import uvicorn

    from governance.api.server_limits import uvicorn_options
    from governance.logs import configure_logging
    from governance.witness.identity import load_witness
    from governance.witness.server import create_witness_app
    from governance.witness.state import WitnessState

    with errors_as_exit():
        try:
            logs = [parse_vkey(text) for text in log_vkey]
        except AuditVerificationError as exc:
            raise BadRequest(f"--log-vkey: {exc.message}") from None
        application = create_witness_app(load_witness(state), logs, WitnessState(state))
    configure_logging()
    # The same bounds on slow or oversized clients as `warden serve` (server_limits.py).
    uvicorn.run(
        application, host=host, port=port, **uvicorn_options(settings()), proxy_headers=False
    )


@app.command("cosign")
def cosign() -> None:
    """Ask the configured witnesses (WARDEN_WITNESSES) to cosign the newest checkpoint now."""
    from governance.cli.common import open_engine
    from governance.db import make_sessionmaker
    from governance.witness.cosigning import Cosigner

    cfg = settings()
    cosigner = Cosigner.from_settings(cfg)
    if cosigner is None:
        typer.echo("no witnesses configured (WARDEN_WITNESSES)", err=True)
        raise typer.Exit(1)
    engine = open_engine(cfg)
    try:
        with errors_as_exit():
            result = cosigner.cosign_latest(make_sessionmaker(engine))
    finally:
        engine.dispose()
    if result.size is None:
        typer.echo("the log has no checkpoint yet: nothing to cosign", err=True)
        raise typer.Exit(1)
    for name, why in sorted(result.refused.items()):
        typer.echo(f"witness {name} did not cosign: {why}", err=True)
    typer.echo(
        f"checkpoint {result.size}: cosigned now by {len(result.cosigned)} witnesses"
        + (f" ({', '.join(sorted(result.cosigned))})" if result.cosigned else "")
    )
    if result.refused:
        raise typer.Exit(1)
