"""Issue 25, item 5: an oversized or slow client cannot pin the server's CPU, memory or sockets.

Each test is the attack, sent over a raw socket to a real ``warden serve`` whose limits are set
short through its environment, and the refusal it must get while the server goes on answering
others. The attacks never reach the database: SQLite is enough (the backends are the same
below the HTTP protocol).
"""

from __future__ import annotations

import inspect
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from governance.api.server_limits import GuardedHttpToolsProtocol
from governance.audit.models import AuditEntry
from governance.config import Settings
from governance.db import make_engine
from governance.kit.http import client as http_client
from tests.conftest import LiveServer, fresh_database, make_settings, seed_admin

sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

HEAD_TIMEOUT = 1.0
BODY_TIMEOUT = 1.5
MAX_CONNECTIONS = 16
MAX_HEADER = 16_384
# The sweep checks deadlines every quarter timeout; a refusal is due within this much more.
SLACK = 2.0


def _start(settings: Settings, log_path: Path) -> LiveServer:
    live = LiveServer(settings, log_path)
    live.env.update(
        WARDEN_MAX_HEADER_BYTES=str(MAX_HEADER),
        WARDEN_HEADER_TIMEOUT_SECONDS=str(HEAD_TIMEOUT),
        WARDEN_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
        WARDEN_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
    )
    live.start()
    return live


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[LiveServer]:
    """One server for the module's attacks: each closes its sockets and checks it still serves."""
    folder = tmp_path_factory.mktemp("slow-clients")
    with fresh_database("sqlite", folder, sqlite_template, None) as url:
        settings = make_settings(url, folder)
        seed_admin(settings)
        live = _start(settings, folder / "server.log")
        yield live
        live.stop()


@pytest.fixture
def fresh_server(settings: Settings, admin_token: str, tmp_path: Path) -> Iterator[LiveServer]:
    live = _start(settings, tmp_path / "server.log")
    yield live
    live.stop()


def _connect(server: LiveServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _read_answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a reset after its answer ends it too)."""
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except ConnectionResetError:
        pass
    return answer


def _status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer[9:12])


def _health(server: LiveServer) -> int:
    try:
        return httpx.get(server.url + "/healthz", timeout=5).status_code
    except httpx.HTTPError:
        return 0


def _still_serves(server: LiveServer) -> None:
    r = httpx.get(server.url + "/healthz", timeout=5)
    assert r.status_code == 200


def _send_all(sock: socket.socket, data: bytes, piece: int = 65536) -> int:
    """Send ``data`` until the server stops taking it; returns how much it took."""
    sent = 0
    try:
        while sent < len(data):
            sent += sock.send(data[sent : sent + piece])
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        pass
    return sent


def test_an_oversized_header_is_refused_with_431(server: LiveServer) -> None:
    # One 1 MB header line, never finished, and one finished in a single write.
    for ending in (b"", b"\r\n\r\n"):
        started = time.monotonic()
        with _connect(server) as sock:
            _send_all(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2**20 + ending)
            answer = _read_answer(sock)
        assert _status(answer) == 431, answer[:300]
        assert b"application/problem+json" in answer and b"nosniff" in answer
        assert time.monotonic() - started < 5
        _still_serves(server)
    # A head just under the limit is served.
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Fit: " + b"a" * 8000 + b"\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")


def test_a_stalled_head_is_closed_within_the_header_timeout(server: LiveServer) -> None:
    for first_bytes in (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1", b""):
        started = time.monotonic()
        with _connect(server) as sock:
            sock.sendall(first_bytes)  # half a head (or nothing), then silence
            answer = _read_answer(sock)
        waited = time.monotonic() - started
        assert _status(answer) == 408, answer
        assert HEAD_TIMEOUT * 0.9 <= waited < HEAD_TIMEOUT + SLACK, waited
        _still_serves(server)


def test_a_head_dribbled_a_byte_at_a_time_is_cut_off(server: LiveServer) -> None:
    # Each byte arrives in time, the head never ends: the deadline is on the whole head.
    started = time.monotonic()
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        try:
            while time.monotonic() - started < HEAD_TIMEOUT + SLACK + 1:
                sock.sendall(b"X-A: b\r\n")
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = _read_answer(sock)
    assert _status(answer) == 408, answer
    assert time.monotonic() - started < HEAD_TIMEOUT + SLACK
    _still_serves(server)


def _principal_calls(server: LiveServer, until: float) -> list[dict[str, object]]:
    """The audited ``POST /v1/principals`` calls, waiting until one is there or ``until``."""
    engine = make_engine(server.settings.resolved_database_url)
    try:
        while True:
            with engine.connect() as conn:
                texts = conn.scalars(
                    select(AuditEntry.canonical).where(AuditEntry.event_type == "api.call")
                ).all()
            calls = [e for e in map(json.loads, texts) if e["action"] == "POST /v1/principals"]
            if calls or time.monotonic() > until:
                return calls
            time.sleep(0.05)
    finally:
        engine.dispose()


def test_a_slow_body_is_answered_408(server: LiveServer) -> None:
    started = time.monotonic()
    with _connect(server) as sock:
        # The head is whole and in time; the body is announced, then trickles and stops.
        sock.sendall(
            b"POST /v1/principals HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n" + b'{"name": "'
        )
        answer = _read_answer(sock)
    waited = time.monotonic() - started
    assert _status(answer) == 408, answer
    assert BODY_TIMEOUT * 0.9 <= waited < BODY_TIMEOUT + SLACK, waited
    _still_serves(server)
    # The call is audited, with the reason (the app saw a body it could not read: a 400). The
    # protocol answers 408 before the app has read its disconnect, so the entry may come after.
    (entry,) = _principal_calls(server, until=time.monotonic() + 10)
    assert entry["reason"] == "the request body was not complete in time"
    # A kept-alive connection is not cut while it waits for its next request.
    with http_client(base_url=server.url, timeout=5) as http:
        assert http.get("/healthz").status_code == 200
        time.sleep(BODY_TIMEOUT + HEAD_TIMEOUT)
        assert http.get("/healthz").status_code == 200
    assert "Traceback" not in server.log_tail(20_000)


# A fresh server: the cap counts every open connection, a shared server's included.
@sqlite_only
def test_connections_beyond_the_cap_are_refused_while_the_held_ones_are_served(
    fresh_server: LiveServer,
) -> None:
    server = fresh_server
    held = [_connect(server) for _ in range(MAX_CONNECTIONS)]
    try:
        with _connect(server) as extra:
            answer = _read_answer(extra)
        assert _status(answer) == 503, answer
        assert b"application/problem+json" in answer
        # The held connections are served (each before its head deadline).
        for sock in held[:4]:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    finally:
        for sock in held:
            sock.close()
    # A slot freed: new connections are served again once the server saw the closes.
    deadline = time.monotonic() + 5
    while _health(server) != 200 and time.monotonic() < deadline:
        time.sleep(0.02)
    _still_serves(server)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_ten_clients_with_huge_headers_do_not_grow_the_server(server: LiveServer) -> None:
    # Ten clients each try to send a 32 MB header; without the bound the server held them all.
    before = _rss_kib(server.pid)
    peak = before
    stop = threading.Event()

    def attack() -> None:
        with _connect(server) as sock:
            _send_all(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 32 * 2**20)

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _rss_kib(server.pid))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    attackers = [threading.Thread(target=attack) for _ in range(10)]
    for thread in attackers:
        thread.start()
    for thread in attackers:
        thread.join(timeout=30)
    stop.set()
    watcher.join()
    assert not any(t.is_alive() for t in attackers)
    assert peak - before < 30 * 1024, f"the server grew by {(peak - before) // 1024} MiB"
    _still_serves(server)


def test_uvicorn_still_has_what_the_guard_relies_on() -> None:
    # The guard overrides these hooks of uvicorn's protocol and sets these attributes of its
    # request cycle; if uvicorn renames one, the bounds would silently stop: fail here first.
    for hook in (
        "connection_made",
        "connection_lost",
        "data_received",
        "send_400_response",
        "on_message_begin",
        "on_headers_complete",
        "on_message_complete",
    ):
        assert callable(getattr(HttpToolsProtocol, hook)), hook
        assert hook in GuardedHttpToolsProtocol.__dict__, hook
    assert "self.send_400_response(" in inspect.getsource(HttpToolsProtocol.data_received)
    cycle = inspect.getsource(RequestResponseCycle)
    for attribute in ("disconnected", "message_event", "response_started", "response_complete"):
        assert f"self.{attribute} =" in cycle, attribute
    assert "if self.disconnected" in inspect.getsource(RequestResponseCycle.send)
