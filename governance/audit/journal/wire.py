"""Frames between a server process and its journal writer process.

A frame is a 4-byte big-endian length and a pickle. Both ends are the same program: the socket
is a ``socketpair`` made by the server and inherited by the writer process it starts, never a
listening socket, so nothing else can write to it.
"""

from __future__ import annotations

import pickle
import select
import socket
import struct
import time
from typing import Any

__all__ = ["TIMED_OUT", "FrameReader", "frame", "send_frame"]

_HEADER = struct.Struct(">I")
MAX_FRAME = 1 << 30


def frame(message: Any) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    if len(data) > MAX_FRAME:
        raise ValueError("journal frame too large")
    return _HEADER.pack(len(data)) + data


def send_frame(sock: socket.socket, message: Any) -> None:
    sock.sendall(frame(message))


TIMED_OUT = object()  # what FrameReader.next returns when no whole frame came in time
# Bytes asked of one recv: Python allocates the whole size on every call, so a large size
# costs an mmap per frame. A larger frame takes several reads.
_RECV = 1 << 16


class FrameReader:
    """Frames from a socket, each as soon as it is whole, waiting at most a given time.

    Both ends read with it: the server's journal (its handshake under a start timeout, then
    its answers), and the writer process, which learns from a timeout that nothing more is
    waiting and closes a batch without a thread of its own.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self._eof = False

    def next(self, timeout: float | None) -> Any:
        """The next message; None at end of stream; :data:`TIMED_OUT` after ``timeout`` s.

        ``timeout`` None waits as long as it takes; 0 only takes what has already arrived.

        Raises:
            EOFError: the stream ended inside a frame.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            message = self._parse()
            if message is not None:
                return message
            if self._eof:
                if self._buffer:
                    raise EOFError("journal stream ended inside a frame")
                return None
            left = None if deadline is None else deadline - time.monotonic()
            if left is None:
                data = self._sock.recv(_RECV)
            elif left > 0:
                readable, _, _ = select.select([self._sock], [], [], left)
                if not readable:
                    return TIMED_OUT
                data = self._sock.recv(_RECV)
            else:
                # Only what has arrived: one non-blocking read, not a select() before it (the
                # server's event loop reads its answers so, each time the socket is readable).
                try:
                    data = self._sock.recv(_RECV, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    return TIMED_OUT
            if not data:
                self._eof = True
            self._buffer += data

    def _parse(self) -> Any | None:
        buffer = self._buffer
        if len(buffer) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(buffer)
        end = _HEADER.size + size
        if len(buffer) < end:
            return None
        message = pickle.loads(buffer[_HEADER.size : end])  # noqa: S301 - see above
        del buffer[:end]
        return message
