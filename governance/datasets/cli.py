"""``warden datasets register|list|show``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.markup import escape

from governance.cli.common import (
    JSON,
    console,
    err_console,
    errors_as_exit,
    print_json,
    settings,
    show_fields,
    show_rows,
    transaction,
)
from governance.datasets.display import readable
from governance.datasets.errors import DatasetError
from governance.datasets.service import datasets
from governance.kit.context import cli_context

app = typer.Typer(help="The dataset registry.", no_args_is_help=True)


@app.command("register")
def register(
    name: str = typer.Argument(..., help="Name to register the dataset under."),
    schema: Path = typer.Option(..., "--schema", help="The dataset's schema YAML."),
    data: Path = typer.Option(
        None, "--data", help="The data file (schemas with split.kind: random)."
    ),
    replace: bool = typer.Option(
        False, "--replace", help="Register again under an existing name (the ledger is kept)."
    ),
) -> None:
    """Validate a dataset against its schema and record its content hashes.

    Every problem with the schema or the data is listed at once.

    The schema format, every key, an example and the errors: docs/datasets.md.
    """
    from governance.privacy.service import training

    cfg = settings()
    with errors_as_exit(), _problems_listed(), transaction(cfg) as session:
        row = datasets.register(
            session, cli_context(), name=name, schema_path=schema, data_path=data, replace=replace
        )
        ledger = training.dataset_ledger(session, cfg, row)
        line = (
            f"registered {row.name}: {row.train_rows} train / {row.test_rows} test rows, "
            f"sha256 {row.content_hash[:16]}…"
        )
        clipped: dict[str, dict[str, int]] = json.loads(row.values_clipped or "{}")
        for split, columns in clipped.items():
            counts = ", ".join(f"{column} {count}" for column, count in columns.items())
            line += f"\nclipped to the schema's bounds in {split}: {counts}"
    spent = "unbounded" if ledger.epsilon_spent is None else f"{ledger.epsilon_spent:.4g}"
    if ledger.shared_with:
        line += (
            f"\nprivacy ledger {ledger.id} SHARED with {', '.join(ledger.shared_with)} "
            f"(the same rows): ε spent {spent} of {ledger.cap_epsilon:g} over {ledger.runs} runs"
        )
    else:
        line += f"\nprivacy ledger {ledger.id}: ε spent {spent} of {ledger.cap_epsilon:g}"
    console.print(line)


@contextmanager
def _problems_listed() -> Iterator[None]:
    """Print every schema or data problem on its own line, then exit 1."""
    try:
        yield
    except DatasetError as exc:
        if not exc.problems:
            raise
        err_console.print(
            f"[red]error:[/red] {escape(exc.summary)} ({len(exc.problems)} problems)",
            soft_wrap=True,
        )
        for problem in exc.problems:
            err_console.print(f"  - {problem}", markup=False, highlight=False, soft_wrap=True)
        err_console.print("the schema format and these errors: docs/datasets.md")
        raise typer.Exit(1) from None


@app.command("list")
def list_(as_json: bool = JSON) -> None:
    """List registered datasets."""
    with errors_as_exit(), transaction() as session:
        rows = [
            {
                "name": row.name,
                "train_rows": row.train_rows,
                "test_rows": row.test_rows,
                "content_hash": row.content_hash,
                "registered_by": "bundled" if row.bundled else row.registered_by,
            }
            for row in datasets.list(session)
        ]
    show_rows(rows, as_json=as_json, empty="no datasets registered")


@app.command("show")
def show(name: str, as_json: bool = JSON) -> None:
    """Show a registered dataset: hashes, sizes, privacy ledger (`--json`: with its schema)."""
    from governance.datasets.schemas import DatasetDetail
    from governance.privacy.service import training

    cfg = settings()
    with errors_as_exit(), transaction(cfg) as session:
        row = datasets.get(session, name)
        ledger = training.dataset_ledger(session, cfg, row)
        detail = DatasetDetail.of(row, ledger)
    if as_json:
        print_json(detail.model_dump(mode="json"))
        return
    show_fields(readable(detail.model_dump()))
