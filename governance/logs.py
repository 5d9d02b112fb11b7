"""Logging setup. Log lines carry types and ids, never payloads, keys or tokens.

That holds for tracebacks too. An exception's message can carry request data: pydantic puts
the offending input in its errors (FastAPI's response validation error holds the whole
response), and a driver error can quote a statement's parameters. So a logged exception is
written as its traceback's frames (files, lines, source) and its type, with the message
withheld, for every exception in its chain. The server hands its own log records (uvicorn's
"Exception in ASGI application" included) to the same handler.
"""

from __future__ import annotations

import logging
import traceback
from types import TracebackType

WITHHELD = "(message withheld)"

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and those it came from, oldest first (as Python prints them)."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        if current.__cause__ is not None:
            current = current.__cause__
        elif current.__suppress_context__:
            current = None
        else:
            current = current.__context__
    return chain[::-1]


def format_exception_withheld(exc: BaseException) -> str:
    """A traceback of ``exc`` and its chain with every message left out."""
    parts: list[str] = []
    for i, link in enumerate(_chain(exc)):
        if i:
            parts.append("\nwhich led to:\n\n")
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_tb(link.__traceback__))
        kind = type(link)
        parts.append(f"{kind.__module__}.{kind.__qualname__}: {WITHHELD}\n")
    return "".join(parts).rstrip("\n")


class WithheldFormatter(logging.Formatter):
    """A formatter that writes exceptions with :func:`format_exception_withheld`."""

    def formatException(self, ei: ExcInfo | tuple[None, None, None]) -> str:
        exc = ei[1]
        return "" if exc is None else format_exception_withheld(exc)


def configure_logging(
    level: int = logging.INFO, fmt: str = "%(asctime)s %(levelname)s %(name)s %(message)s"
) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(WithheldFormatter(fmt))
    logging.basicConfig(level=level, handlers=[handler])
    # Casbin writes every rule and role link of each enforcer it builds at INFO: the whole
    # policy, with principal names, at every policy change. The audit log holds the changes;
    # the server logs the version it installs.
    logging.getLogger("casbin").setLevel(max(level, logging.WARNING))
