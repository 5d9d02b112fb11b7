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
from typing import IO, Any

__all__ = ["TIMED_OUT", "FrameReader", "frame", "read_frame", "send_frame"]

_HEADER = struct.Struct(">I")
MAX_FRAME = 1 << 30


def frame(message: Any) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    if len(data) > MAX_FRAME:
        raise ValueError("journal frame too large")
    return _HEADER.pack(len(data)) + data


def send_frame(sock: socket.socket, message: Any) -> None:
    sock.sendall(frame(message))


def read_frame(stream: IO[bytes]) -> Any | None:
    """The next message, or None at end of stream (the other side is gone).

    Raises:
        EOFError: the stream ended inside a frame.
    """
    header = stream.read(_HEADER.size)
    if not header:
        return None
    if len(header) < _HEADER.size:
        raise EOFError("journal stream ended inside a frame header")
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("journal stream ended inside a frame")
    return pickle.loads(data)  # noqa: S301 - our own child process, over a socketpair


TIMED_OUT = object()  # what FrameReader.next returns when no whole frame came in time
_RECV = 1 << 20


class FrameReader:
    """Frames from a socket, each as soon as it is whole, waiting at most a given time.

    Unlike :func:`read_frame` on a buffered stream, it can tell a caller that nothing more
    is waiting (the writer process uses that to close a batch without a thread of its own).
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
        while True:
            message = self._parse()
            if message is not None:
                return message
            if self._eof:
                if self._buffer:
                    raise EOFError("journal stream ended inside a frame")
                return None
            if timeout is not None:
                readable, _, _ = select.select([self._sock], [], [], max(timeout, 0.0))
                if not readable:
                    return TIMED_OUT
                timeout = 0.0  # data is here now; after it, take only what has arrived
            data = self._sock.recv(_RECV)
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
