"""FrameReader: whole frames as they arrive, a timeout when none is whole, and end of stream."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from governance.audit.journal.wire import TIMED_OUT, FrameReader, frame
from governance.kit.events import Actor, AuditEvent, Source
from governance.records.sink import RecordRow


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_frames_sent_together_are_read_one_by_one(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    sender, receiver = pair
    sender.sendall(frame(("append", [1])) + frame(("append", [2])) + frame(("stop",)))
    reader = FrameReader(receiver)
    assert reader.next(None) == ("append", [1])
    assert reader.next(0) == ("append", [2])  # already here: no wait
    assert reader.next(0) == ("stop",)
    assert reader.next(0) is TIMED_OUT


def test_a_partial_frame_times_out_then_completes(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    sender, receiver = pair
    data = frame(("append", list(range(1000))))
    sender.sendall(data[:7])
    reader = FrameReader(receiver)
    assert reader.next(0.01) is TIMED_OUT
    sender.sendall(data[7:])
    assert reader.next(1.0) == ("append", list(range(1000)))


def test_timeout_zero_takes_only_what_has_arrived(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """How the server's event loop reads answers: never a wait, whatever has arrived."""
    sender, receiver = pair
    reader = FrameReader(receiver)
    assert reader.next(0) is TIMED_OUT  # nothing yet
    data = frame(("done", list(range(100)), 100))
    sender.sendall(data[:9])
    assert reader.next(0) is TIMED_OUT  # half a frame
    sender.sendall(data[9:] + frame(("bye",)))
    assert reader.next(0) == ("done", list(range(100)), 100)
    assert reader.next(0) == ("bye",)
    sender.close()
    assert reader.next(0) is None  # end of stream, not a timeout


@pytest.mark.parametrize("timeout", [None, 10.0])
def test_a_frame_larger_than_one_read_arrives_whole(
    pair: tuple[socket.socket, socket.socket], timeout: float | None
) -> None:
    sender, receiver = pair
    payload = bytes(range(256)) * 8192  # 2 MiB: many reads, and more than the socket buffers
    data = frame(("append", payload)) + frame(("stop",))
    # sendall blocks until the reader has taken most of it: send from another thread.
    thread = threading.Thread(target=sender.sendall, args=(data,))
    thread.start()
    reader = FrameReader(receiver)
    assert reader.next(timeout) == ("append", payload)
    assert reader.next(timeout) == ("stop",)
    thread.join(10)


def test_end_of_stream_between_frames_is_none(pair: tuple[socket.socket, socket.socket]) -> None:
    sender, receiver = pair
    sender.sendall(frame(("ready",)))
    sender.close()
    reader = FrameReader(receiver)
    assert reader.next(None) == ("ready",)
    assert reader.next(None) is None


def test_end_of_stream_inside_a_frame_is_an_error(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    sender, receiver = pair
    sender.sendall(frame(("append", [1]))[:-1])
    sender.close()
    with pytest.raises(EOFError):
        FrameReader(receiver).next(None)


def test_what_an_append_carries_survives_a_frame_unchanged() -> None:
    # AuditEvent, Actor, Source and RecordRow pickle as positional fields (their __reduce__):
    # every field must come back, in its place.
    event = AuditEvent(
        event_type="api.call",
        action="predict",
        actor=Actor(principal_id=3, name="svc", roles=("client", "x"), auth_method="api_key"),
        source=Source(ip="10.0.0.1", user_agent="curl/8"),
        resource={"model": "m", "version": "1.0.0"},
        decision="allow",
        reason="allowed by rule [p, client, models, predict, allow]",
        policy_version=4,
        model_version="1.0.0",
        outcome=200,
        request_id="r" * 32,
        input_digest="a" * 64,
        output_digest="b" * 64,
        data_key_id="dek_1",
        details={"records": 2},
    )
    row = RecordRow({"id": "rec", "blob": b"\x01sealed", "dek_version": 2}, "dek_1", "ref")
    a, b = socket.socketpair()
    try:
        a.sendall(frame(("append", [(1, [event, SYSTEM_EVENT], row)])))
        (kind, [(ident, events, back)]) = FrameReader(b).next(5)
    finally:
        a.close()
        b.close()
    assert (kind, ident) == ("append", 1)
    assert events == [event, SYSTEM_EVENT]
    assert back == row and back.values == row.values


SYSTEM_EVENT = AuditEvent(event_type="key.create", action="create")
