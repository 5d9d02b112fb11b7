"""``warden models register|import|list|promote``."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from governance.cli.common import (
    JSON,
    chosen_version,
    console,
    errors_as_exit,
    settings,
    show_rows,
    transaction,
)
from governance.kit.context import cli_context
from governance.registry.service import registry

app = typer.Typer(help="The model registry.", no_args_is_help=True)


@app.command("register")
def register(artifact_dir: Path) -> None:
    """Verify and register an artifact folder (manifest.json + weights.safetensors)."""
    cfg = settings()
    with errors_as_exit(), transaction(cfg) as session:
        row = registry.register(
            session, cli_context(), source_dir=artifact_dir, models_dir=cfg.resolved_models_dir
        )
        name, version, sha = row.name, row.version, row.artifact_sha256
    console.print(f"registered {name} {version} (manifest sha256 {sha[:16]}…)")


@app.command("import")
def import_(
    name: str,
    version: str = typer.Option(..., help="The version to register."),
    onnx: Path = typer.Option(..., exists=True, dir_okay=False, help="The ONNX graph (.onnx)."),
    schema: Path = typer.Option(
        ..., exists=True, dir_okay=False, help="The import schema (YAML): features, output, card."
    ),
) -> None:
    """Import a model trained elsewhere: check an ONNX graph, run it, register it."""
    from governance.registry.import_schema import parse_import_schema
    from governance.registry.importing import import_onnx, import_workdir

    cfg = settings()
    with errors_as_exit():
        parsed = parse_import_schema(schema.read_bytes())
        workdir = import_workdir(cfg.resolved_models_dir)
        try:
            with transaction(cfg) as session:
                row = import_onnx(
                    session,
                    cli_context(),
                    name=name,
                    version=version,
                    graph=onnx,
                    schema=parsed,
                    models_dir=cfg.resolved_models_dir,
                    workdir=workdir,
                    max_graph_bytes=cfg.model_import_max_bytes,
                    onnx_threads=cfg.onnx_threads,
                )
                sha = row.artifact_sha256
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    console.print(f"imported {name} {version} (manifest sha256 {sha[:16]}…)")


@app.command("list")
def list_(as_json: bool = JSON) -> None:
    """List model versions and stages."""
    with errors_as_exit(), transaction() as session:
        rows = [
            {
                "name": row.name,
                "version": row.version,
                "stage": row.stage,
                "artifact_sha256": row.artifact_sha256,
            }
            for row in registry.list_versions(session)
        ]
    show_rows(rows, as_json=as_json, empty="no models registered")


@app.command("promote")
def promote(
    name: str,
    version: str = typer.Option(None, "--version", help="The version to serve (required)."),
    positional: str = typer.Argument(None, hidden=True, metavar="{version}"),
) -> None:
    """Promote a version to serving (promotion gates apply; exit 3 when one refuses)."""
    version = chosen_version(version, positional, required=True) or ""
    with errors_as_exit(), transaction() as session:
        registry.promote(session, cli_context(), name=name, version=version)
    console.print(f"{name} {version} is serving")
