"""Bounds on what one connection may hold in ``warden serve``: its head, its time, its number.

uvicorn's httptools protocol reads a request head of any size for as long as the client takes,
so a slow or huge head (or body) could hold a connection and its memory for ever.
:class:`GuardedHttpToolsProtocol` is that protocol with four bounds (``ServerLimits``):

- a head over ``max_header_bytes`` is answered 431 and closed, counted as it arrives, so the
  parser never holds more than the limit plus one read (256 KiB);
- a head not complete within ``header_timeout_seconds`` (or a silent connection) gets 408;
- a body not complete within ``body_timeout_seconds`` of its head gets 408 and a close;
- a connection beyond ``max_connections`` open at once is answered 503 and closed.

One periodic sweep checks the deadlines, so the hot path only stores a ``loop.time()`` per
phase. Each refusal is a problem+json with the usual security headers, sent before a lingering
close so the client reads it instead of a reset. The uvicorn hooks used here are pinned by
``tests/security/test_slow_clients.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar, cast

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from governance.config import Settings
from governance.kit.request_facts import facts_of
from governance.kit.security_headers import SERVER_ANSWER

logger = logging.getLogger(__name__)

# How long a refused connection's further bytes are read and dropped before it is closed, so
# that its answer is read before the close (a close with unread data resets the connection).
_LINGER_SECONDS = 1.0
_HEAD, _BODY = 1, 2  # the phase a connection's deadline bounds


@dataclass(frozen=True)
class ServerLimits:
    """What one connection may hold; see the module docstring."""

    max_header_bytes: int
    header_timeout_seconds: float
    body_timeout_seconds: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerLimits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            header_timeout_seconds=settings.header_timeout_seconds,
            body_timeout_seconds=settings.body_timeout_seconds,
            max_connections=settings.max_connections,
        )

    @property
    def tick(self) -> float:
        """How often the deadlines are checked: a deadline is kept to within this."""
        return max(0.01, min(1.0, self.header_timeout_seconds / 4, self.body_timeout_seconds / 4))


class _HeadTooLarge(Exception):
    """Raised from the parser's callback to stop it; answered 431 by ``send_400_response``."""


def _answer_bytes(status: int, detail: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    phrase = HTTPStatus(status).phrase
    body = json.dumps(
        {
            "type": f"https://warden.dev/problems/http-{status}",
            "title": phrase,
            "status": status,
            "detail": detail,
        }
    ).encode()
    head = [f"HTTP/1.1 {status} {phrase}\r\n".encode()]
    for name, value in (
        *default_headers,
        *SERVER_ANSWER,
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ):
        head += [name, b": ", value, b"\r\n"]
    head += [b"\r\n", body]
    return b"".join(head)


class _Sweep:
    """One periodic check of every open connection's deadline, running while any is open."""

    def __init__(self, tick: float) -> None:
        self.tick = tick
        self.handle: asyncio.TimerHandle | None = None

    def ensure(self, loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        if self.handle is None:
            self.handle = loop.call_later(self.tick, self._run, loop, connections)

    def _run(self, loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        self.handle = None
        now = loop.time()
        for connection in list(connections):
            deadline = getattr(connection, "deadline", 0.0)
            if deadline and now >= deadline:
                connection.expire()
        if connections:
            self.ensure(loop, connections)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds of :class:`ServerLimits`.

    Built per server by :func:`guarded_protocol`, which sets ``limits`` and ``sweep``.
    """

    limits: ClassVar[ServerLimits]
    sweep: ClassVar[_Sweep]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.deadline = 0.0  # when the current phase must be over (0: no deadline)
        self.phase = 0
        self.head_open = False  # between a request's first byte and the end of its head
        self.head_bytes = 0  # bytes of the open head counted so far
        self.chunk_bytes = 0  # the size of the read being parsed
        self.completed_in_chunk = False  # a request ended inside the read being parsed
        self.refusal: tuple[int, str] | None = None  # a refusal decided inside the parser
        self.refused = False  # answered and closing: what arrives is dropped

    # The connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            # Not registered: it holds no slot, only the moment its answer takes.
            self.transport = transport
            logger.warning("connection refused: %d connections open", len(self.connections))
            self._refuse(503, f"the server holds {self.limits.max_connections} connections")
            return
        super().connection_made(transport)
        self._expect(_HEAD, self.limits.header_timeout_seconds)
        self.sweep.ensure(self.loop, self.connections)

    def connection_lost(self, exc: Exception | None) -> None:
        self.deadline = 0.0
        if self.refused and self.flow is None:  # refused before it was registered
            return
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        self.chunk_bytes = len(data)
        self.completed_in_chunk = False
        super().data_received(data)
        if self.head_open and not self.completed_in_chunk and not self.refused:
            # The whole read belongs to a head still open (a request that ended in this read
            # would put its body's tail before it: that read is not counted).
            self.head_bytes += len(data)
            if self.head_bytes > self.limits.max_header_bytes:
                self._refuse(431, self._too_large_detail)

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to a request the parser refused, as problem+json; the parser also
        # stops this way when a head is over the limit (refusal set in on_headers_complete).
        status, detail = self.refusal or (400, "the request is not valid HTTP/1.1")
        self._refuse(status, detail)

    # The parser's callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.head_open = True
        self.head_bytes = 0
        if self.phase != _HEAD:  # a kept-alive connection's next request
            self._expect(_HEAD, self.limits.header_timeout_seconds)

    def on_headers_complete(self) -> None:
        self.head_open = False
        limit = self.limits.max_header_bytes
        # Counted exactly only when the reads of this head could exceed the limit.
        if self.head_bytes + self.chunk_bytes > limit and self._head_size() > limit:
            self.refusal = (431, self._too_large_detail)
            raise _HeadTooLarge
        self._expect(_BODY, self.limits.body_timeout_seconds)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.completed_in_chunk = True
        self.deadline = 0.0
        self.phase = 0
        super().on_message_complete()

    # Deadlines and refusals

    def expire(self) -> None:
        """The current phase is past its deadline (called by the sweep)."""
        self.deadline = 0.0
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if self.phase == _HEAD:
            logger.info("request head not complete in time: connection closed")
            self._refuse(408, "the request head was not complete in time")
        elif cycle is not None and not cycle.response_started:
            logger.info("request body not complete in time: connection closed")
            # The app is waiting for the body: it reads a disconnect, and sends nothing. Its
            # audit entry (a 400: the body could not be read) says why.
            detail = "the request body was not complete in time"
            facts_of(cast(dict[str, Any], cycle.scope)).reason = detail
            cycle.disconnected = True
            cycle.message_event.set()
            self._refuse(408, detail, cycle_done=True)
        else:
            self.transport.close()

    def _expect(self, phase: int, seconds: float) -> None:
        self.phase = phase
        self.deadline = self.loop.time() + seconds

    def _head_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    @property
    def _too_large_detail(self) -> str:
        return f"the request head exceeds {self.limits.max_header_bytes} bytes"

    def _refuse(self, status: int, detail: str, *, cycle_done: bool = False) -> None:
        """Answer ``status`` and close after a linger; with a response in progress, close."""
        self.refused = True
        self.deadline = 0.0
        self.head_open = False
        transport = self.transport
        if transport.is_closing():
            return
        cycle = self.cycle
        if not (cycle_done or cycle is None or cycle.response_complete):
            transport.close()  # a pipelined request's refusal: no answer can go before it
            return
        transport.write(_answer_bytes(status, detail, self.server_state.default_headers))
        if not transport.can_write_eof():
            transport.close()
            return
        # Half-close, and drain what the client still sends, so that it reads the answer.
        transport.write_eof()
        if self.flow is not None:
            self.flow.resume_reading()
        self.loop.call_later(_LINGER_SECONDS, transport.close)


def guarded_protocol(limits: ServerLimits) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for one server (uvicorn's ``http=``), bound to ``limits``."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"limits": limits, "sweep": _Sweep(limits.tick)},
    )


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The arguments of ``uvicorn.run`` that ``warden serve`` passes besides host and port."""
    return {
        "http": guarded_protocol(ServerLimits.from_settings(settings)),
        # Warden serves no WebSocket: an upgrade request stays HTTP, under the bounds above.
        "ws": "none",
        "log_level": "warning",
        "access_log": False,
        # uvicorn's records go to the handler set up by configure_logging: tracebacks
        # without messages.
        "log_config": None,
    }
