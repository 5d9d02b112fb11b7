"""FrameReader: whole frames as they arrive, a timeout when none is whole, and end of stream."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from governance.journal.wire import TIMED_OUT, FrameReader, frame


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
