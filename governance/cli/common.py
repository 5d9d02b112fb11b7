"""What every CLI command shares: settings, a database session, error display."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from sqlalchemy.orm import Session

from governance.config import Settings, load_settings
from governance.db import make_engine, make_sessionmaker
from governance.errors import WardenError

console = Console()
err_console = Console(stderr=True)


def settings() -> Settings:
    """The settings, or a one-line error and exit 1 (values are never echoed)."""
    with errors_as_exit():
        return load_settings()


@contextmanager
def transaction(cfg: Settings | None = None) -> Iterator[Session]:
    """One transaction against the configured database (commit on success)."""
    engine = make_engine((cfg or settings()).resolved_database_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            yield session
    finally:
        engine.dispose()


@contextmanager
def errors_as_exit() -> Iterator[None]:
    """Show a WardenError as a one-line message and exit 1 (never a traceback)."""
    try:
        yield
    except WardenError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
