"""Frames between a server process and its journal writer process.

A frame is a 4-byte big-endian length and a pickle. Both ends are the same program: the socket
is a ``socketpair`` made by the server and inherited by the writer process it starts, never a
listening socket, so nothing else can write to it.
"""

from __future__ import annotations

import pickle
import socket
import struct
from typing import IO, Any

__all__ = ["frame", "read_frame", "send_frame"]

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
