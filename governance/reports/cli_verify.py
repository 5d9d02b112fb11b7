"""``warden report verify``: a report folder checked with nothing but its files and a key.

Its own module, without the report builder (and torch): it runs the same in remote mode, on a
machine that only talks to the API.
"""

from __future__ import annotations

from pathlib import Path

import typer

from governance.audit.signing import load_signing_key, public_vkey
from governance.cli.common import console, err_console, errors_as_exit, settings
from governance.reports.manifest import verify_report_dir


def verify(
    folder: Path = typer.Argument(..., help="The report folder (holding manifest.json)."),
    key: str = typer.Option(
        None,
        "--key",
        help="The log's verifier key, or a file holding it (default: this installation's key).",
    ),
) -> None:
    """Check a report folder: signature of the manifest and sha256 of every file."""
    with errors_as_exit():
        if key is None:
            cfg = settings()
            vkey = public_vkey(cfg.log_origin, load_signing_key(cfg.resolved_signing_key_file))
        elif Path(key).is_file():
            vkey = Path(key).read_text(encoding="utf-8").strip()
        else:
            vkey = key
        if not folder.is_dir():
            err_console.print(f"[red]error:[/red] {folder} is not a folder")
            raise typer.Exit(1)
        checked = verify_report_dir(folder, vkey)
    console.print(
        f"OK: report {checked.report_id}, {len(checked.files)} files, signed by {checked.signer}"
    )
