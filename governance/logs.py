"""Logging setup. Log lines carry types and ids, never payloads, keys or tokens.

That holds for tracebacks too. An exception's message can carry request data: pydantic puts
the offending input in its errors (FastAPI's response validation error holds the whole
response), and a driver error can quote a statement's parameters. So a logged exception is
written as its traceback's frames (files, lines, source) and its type, with the message
withheld, for every exception in its chain. The server hands its own log records (uvicorn's
"Exception in ASGI application" included) to the same handler.

Two formats, chosen in one place (:func:`configure_logging`): plain text for a person at a
terminal (``local``), JSON lines for a log shipper (``production``). A JSON line carries the
request id of the request being served, and the access log's fields (route template, method,
status, principal name, decision, latency), each as its own key.
"""

from __future__ import annotations

import logging
import sys
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from types import TracebackType

import orjson

WITHHELD = "(message withheld)"
ACCESS_LOGGER = "warden.access"
# The request being served in this task, for every line logged while serving it.
REQUEST_ID: ContextVar[str | None] = ContextVar("warden_request_id", default=None)
# What a log call may add as ``extra=``; nothing else of a record is written (a record's own
# attributes are many, and an arbitrary extra could carry what must never be logged).
FIELDS = (
    "request_id",
    "method",
    "route",
    "status",
    "principal",
    "decision",
    "latency_ms",
    "model",
    "policy_version",
)

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


class JsonFormatter(WithheldFormatter):
    """One JSON object per line: time, level, logger, message, the allowed fields, and an
    exception as :func:`format_exception_withheld` writes it."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            line["request_id"] = request_id
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info and record.exc_info[1] is not None:
            line["exception"] = self.formatException(record.exc_info)
        # orjson: a JSON access line per request costs several times less than with json.
        return orjson.dumps(line, default=str).decode()


def configure_logging(
    level: int = logging.INFO,
    fmt: str = "%(asctime)s %(levelname)s %(name)s %(message)s",
    *,
    json_lines: bool = False,
) -> None:
    """Send every log record (uvicorn's included) to stderr, as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else WithheldFormatter(fmt))
    logging.basicConfig(level=level, handlers=[handler])
    # Casbin writes every rule and role link of each enforcer it builds at INFO: the whole
    # policy, with principal names, at every policy change. The audit log holds the changes;
    # the server logs the version it installs.
    logging.getLogger("casbin").setLevel(max(level, logging.WARNING))
