"""What every CLI command shares: settings, a database session, error display, exit codes.

Exit codes (docs/cli.md): 0 ok, 1 error, 2 usage, 3 refused by a rule (the fairness gate, a
privacy budget, policy tests), 4 verification failed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, ProgressColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from governance.errors import RefusedByRule, VerificationFailed, WardenError

if TYPE_CHECKING:
    # Imported where a command opens the database: help and remote commands never do.
    from sqlalchemy import Engine
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm import Session

    from governance.config import Settings

# soft_wrap: a long value (a key, a path) stays on its line for the terminal to wrap, not Rich.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

NO_DATABASE = "no Warden database here; run `warden init`"


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    REFUSED = 3
    VERIFICATION_FAILED = 4


def exit_code_of(exc: WardenError) -> ExitCode:
    """The exit code a command ends with when ``exc`` stops it."""
    if isinstance(exc, VerificationFailed):
        return ExitCode.VERIFICATION_FAILED
    if isinstance(exc, RefusedByRule):
        return ExitCode.REFUSED
    return ExitCode.ERROR


def fail(message: str, code: int = ExitCode.ERROR) -> NoReturn:
    """Print ``error: message`` on stderr, one line and no traceback, and exit with ``code``."""
    # escape: a message quoting a pattern (`^[a-z]{0,63}\\Z`) is text, not Rich markup.
    err_console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    """``--json`` output: one JSON document on stdout, nothing else."""
    typer.echo(json.dumps(data, indent=2, default=str))


_PIPE_WIDTH = 1000
# `--json` on every command that prints data.
JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")


def show_rows(rows: Sequence[dict[str, Any]], *, as_json: bool, empty: str) -> None:
    """Rows as a table with headers, as a JSON list with ``--json``, or ``empty`` if none."""
    if as_json:
        print_json(list(rows))
        return
    if not rows:
        console.print(empty)
        return
    table = Table(*(name.replace("_", " ") for name in rows[0]))
    for row in rows:
        # Text, not markup: a name or reason in brackets is shown as written.
        table.add_row(*(Text(_cell(value)) for value in row.values()))
    # Into a pipe, a row stays whole on its line (grep finds an id in one piece).
    (console if console.is_terminal else Console(width=_PIPE_WIDTH)).print(table)


def show_fields(fields: dict[str, Any]) -> None:
    """One record as a two-column table: a field's name, its value."""
    table = Table("field", "value")
    for name, value in fields.items():
        table.add_row(Text(name.replace("_", " ")), Text(_cell(value)))
    (console if console.is_terminal else Console(width=_PIPE_WIDTH)).print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def progress_bar(*columns: str | ProgressColumn) -> Progress:
    """A progress bar on stderr, drawn only there is a terminal to draw it on (stdout stays
    the command's data, and a log file gets no bar frames)."""
    return Progress(
        *columns, console=err_console, transient=True, disable=not err_console.is_terminal
    )


@contextmanager
def working(description: str) -> Iterator[None]:
    """A spinner and the time elapsed for work whose length is not known in advance."""
    with progress_bar(SpinnerColumn(), TextColumn(description), TimeElapsedColumn()) as bar:
        bar.add_task(description, total=None)
        yield


def chosen_version(
    option: str | None, positional: str | None, *, required: bool = False
) -> str | None:
    """``--version V``, or the older positional spelling ``M V`` (still accepted)."""
    if option is not None and positional is not None and option != positional:
        raise typer.BadParameter(f"two versions given: {positional!r} and --version {option!r}")
    version = option if option is not None else positional
    if required and version is None:
        raise typer.BadParameter("name the version: --version V")
    return version


def settings() -> Settings:
    """The settings, or a one-line error and exit 1 (values are never echoed)."""
    from governance.config import load_settings

    with errors_as_exit():
        return load_settings()


def open_engine(cfg: Settings | None = None) -> Engine:
    """The configured database, once `warden init` has created it; else a one-line error.

    A SQLite file that does not exist is not created here: a command run in the wrong folder
    says so instead of leaving an empty database behind.
    """
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    from governance.db import make_engine

    url = (cfg or settings()).resolved_database_url
    parsed = make_url(url)
    database = parsed.database or ""
    on_file = parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:")
    if on_file and not Path(database).is_file():
        fail(NO_DATABASE)
    _say_direct_mode()
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            initialised = inspect(connection).has_table("alembic_version")
    except OperationalError as exc:
        engine.dispose()
        fail(_database_unavailable(exc))
    if not initialised:
        engine.dispose()
        fail(NO_DATABASE)
    return engine


_told: list[bool] = []


def _say_direct_mode() -> None:
    """Once per command, to a person at a terminal: who the audit log will name.

    Not into a pipe or a log file, where stderr would mix with data a script reads.
    """
    if _told or not err_console.is_terminal:
        return
    from governance.kit.context import local_operator

    _told.append(True)
    err_console.print(
        f"direct database mode: acting as local operator {local_operator()}; use "
        "`warden login --server URL` for everyday work",
        style="yellow",
        markup=False,
        highlight=False,
    )


def require_database(cfg: Settings | None = None) -> None:
    """A one-line error and exit 1 unless `warden init` has created the database."""
    open_engine(cfg).dispose()


@contextmanager
def transaction(cfg: Settings | None = None) -> Iterator[Session]:
    """One transaction against the configured database (commit on success)."""
    from governance.db import make_sessionmaker

    engine = open_engine(cfg)
    try:
        with make_sessionmaker(engine).begin() as session:
            yield session
    finally:
        engine.dispose()


@contextmanager
def errors_as_exit() -> Iterator[None]:
    """Show an expected error as one line on stderr and exit with its code (no traceback)."""
    try:
        yield
    except WardenError as exc:
        fail(exc.message, exit_code_of(exc))
    except Exception as exc:
        # Only a command that imported SQLAlchemy can have met the database's error.
        database_errors = sys.modules.get("sqlalchemy.exc")
        if database_errors is not None and isinstance(exc, database_errors.OperationalError):
            fail(_database_unavailable(exc))
        raise


def _database_unavailable(exc: OperationalError) -> str:
    # The driver's own first line (host, port, reason); the URL and its password are not in it.
    reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc).__name__
    return f"the database is unavailable: {reason}"
