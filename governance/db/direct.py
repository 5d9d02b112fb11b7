"""Core statements compiled once per dialect and run straight on the DBAPI cursor.

The journal's group commit runs the same few statements for every batch, and SQLAlchemy's
per-execution machinery was a large share of the writer process's CPU, which it takes from the
server on a small machine. A :class:`DirectStatement` compiles its statement once per dialect
and column set with SQLAlchemy's own compiler, keeps the SQL text, parameter order, literal
values and bind processors, converts rows exactly as SQLAlchemy would, and runs on the cursor
of the connection's current transaction, so it commits or rolls back with it.

Only plain statements qualify: one whose compiled form needs work at execution time (Python-side
column defaults, expanded ``IN`` lists) is refused when first compiled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class _Plan:
    sql: str
    names: tuple[str, ...]  # every bound parameter, in the statement's order
    positional: bool
    literals: dict[str, Any]  # parameters the statement itself gives a value
    processors: tuple[Processor | None, ...]  # per name

    def bind(self, row: Mapping[str, Any]) -> Any:
        """The DBAPI parameters for one row: a tuple (positional styles) or a dict."""
        literals = self.literals
        values = []
        for name, process in zip(self.names, self.processors, strict=True):
            value = literals[name] if name in literals else row[name]
            values.append(value if process is None else process(value))
        return tuple(values) if self.positional else dict(zip(self.names, values, strict=True))


class DirectStatement:
    """A Core INSERT/UPDATE/SELECT run on the DBAPI cursor of a SQLAlchemy connection.

    Args:
        statement: the statement. Its parameters come from the row mappings passed to
            :meth:`executemany` or :meth:`execute`, keyed as for ``Connection.execute``.
    """

    def __init__(self, statement: ClauseElement) -> None:
        self._statement = statement
        self._plans: dict[tuple[str, tuple[str, ...]], _Plan] = {}

    def _plan(self, dialect: Dialect, keys: tuple[str, ...]) -> _Plan:
        cached = self._plans.get((dialect.name, keys))
        if cached is not None:
            return cached
        compiled = self._statement.compile(dialect=dialect, column_keys=list(keys))
        prefetch = [*compiled.insert_prefetch, *compiled.update_prefetch]  # type: ignore[attr-defined]
        if prefetch or "POSTCOMPILE" in compiled.string:
            raise TypeError(
                "DirectStatement needs a statement SQLAlchemy would not complete at execution "
                "time (no Python-side defaults, no expanding IN)"
            )
        positional = bool(compiled.positional)  # type: ignore[attr-defined]
        # Each parameter under the name it has in the SQL text (anonymous ones are numbered).
        by_name = {name: bind for bind, name in compiled.bind_names.items()}  # type: ignore[attr-defined]
        names = tuple(compiled.positiontup if positional else by_name)  # type: ignore[attr-defined]
        defaults = compiled.construct_params(params=dict.fromkeys(keys))
        assert defaults is not None
        literals = {n: defaults[n] for n in names if n not in keys}
        missing = [n for n, value in literals.items() if value is None]
        if missing:
            raise TypeError(f"DirectStatement: no value for parameters {missing}")
        processors = tuple(
            by_name[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names
        )
        plan = _Plan(compiled.string, names, positional, literals, processors)
        self._plans[(dialect.name, keys)] = plan
        return plan

    def executemany(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement once per row (every row has the same keys), in one call."""
        if not rows:
            return
        plan = self._plan(connection.dialect, tuple(rows[0]))
        cursor = connection.connection.cursor()
        try:
            cursor.executemany(plan.sql, [plan.bind(row) for row in rows])
        finally:
            cursor.close()

    def execute(self, connection: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run the statement once; the rows it returns (``RETURNING`` or a ``SELECT``)."""
        plan = self._plan(connection.dialect, tuple(params))
        cursor = connection.connection.cursor()
        try:
            cursor.execute(plan.sql, plan.bind(params))
            return [tuple(r) for r in cursor.fetchall()] if cursor.description else []
        finally:
            cursor.close()
