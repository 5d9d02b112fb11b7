"""Receiving an ONNX import over HTTP: a multipart body streamed to disk, never held in memory.

``POST /v1/models/import`` takes the form fields ``name``, ``version``, ``schema`` (the YAML of
:mod:`governance.registry.import_schema`) and ``onnx`` (the graph file). The body is parsed as it
arrives; the graph goes to a file in the caller's private work folder and the other fields stay
small. A body over the limit is refused as soon as it passes it (413), whether its length was
declared or not, and a pickle or archive is refused by its first bytes; the work folder is the
caller's to remove, so nothing of a refused upload stays on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from governance.errors import PayloadTooLarge
from governance.registry.errors import InvalidArtifact, UnsafeModelFormat
from governance.registry.import_schema import MAX_SCHEMA_BYTES
from inference.errors import ManifestError
from inference.onnx_model import refuse_unsafe_format

IMPORT_PATH = "/v1/models/import"
# What the body may hold beyond the graph: the multipart framing and the other fields.
IMPORT_SLACK_BYTES = MAX_SCHEMA_BYTES + 64 * 1024
GRAPH_FIELD = "onnx"
TEXT_FIELDS = ("name", "version", "schema")
GRAPH_FILE = "upload.onnx"
_HEAD = 16  # bytes enough to recognise a pickle or an archive


@dataclass
class ImportUpload:
    """What the body held: the text fields and where the graph was written."""

    fields: dict[str, bytes] = field(default_factory=dict)
    graph: Path | None = None
    graph_bytes: int = 0
    filename: str | None = None


class _Receiver:
    """Multipart callbacks writing the graph part to a file and keeping the small fields."""

    def __init__(self, workdir: Path, max_graph_bytes: int) -> None:
        self.out = ImportUpload()
        self.workdir = workdir
        self.max_graph_bytes = max_graph_bytes
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._file: BinaryIO | None = None
        self._text = bytearray()
        self._head = bytearray()

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._header_field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers, self._name, self._text = {}, None, bytearray()

    def _header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name not in (*TEXT_FIELDS, GRAPH_FIELD):
            raise InvalidArtifact(
                f"unknown form field {name[:32]!r}: send name, version, schema and onnx"
            )
        if name in self.out.fields or (name == GRAPH_FIELD and self.out.graph is not None):
            raise InvalidArtifact(f"form field {name!r} was sent twice")
        self._name = name
        if name == GRAPH_FIELD:
            filename = options.get(b"filename")
            self.out.filename = filename.decode("utf-8", "replace")[:256] if filename else None
            self.out.graph = self.workdir / GRAPH_FILE
            self._file = self.out.graph.open("xb")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._file is None:
            self._text.extend(chunk)
            if len(self._text) > MAX_SCHEMA_BYTES:
                raise InvalidArtifact(f"form field {self._name!r} is over {MAX_SCHEMA_BYTES} bytes")
            return
        self.out.graph_bytes += len(chunk)
        if self.out.graph_bytes > self.max_graph_bytes:
            raise PayloadTooLarge(f"the ONNX file exceeds {self.max_graph_bytes} bytes")
        if len(self._head) < _HEAD:
            self._head.extend(chunk[: _HEAD - len(self._head)])
            if len(self._head) >= _HEAD:
                self._refuse_unsafe()
        self._file.write(chunk)

    def _refuse_unsafe(self) -> None:
        try:
            refuse_unsafe_format(bytes(self._head), self.out.filename)
        except ManifestError as exc:
            raise UnsafeModelFormat(str(exc)) from None

    def _part_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._refuse_unsafe()  # a file shorter than the head is checked here
        elif self._name is not None:
            self.out.fields[self._name] = bytes(self._text)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


async def receive_import(request: Request, *, workdir: Path, max_graph_bytes: int) -> ImportUpload:
    """Stream a multipart import body: the graph to ``workdir``, the fields into memory.

    Raises:
        PayloadTooLarge: the declared length or the bytes received pass the limit (413).
        UnsafeModelFormat: the file is a pickle or an archive (422).
        InvalidArtifact: not multipart/form-data, an unknown or repeated field, a field
            missing (422).
    """
    limit = max_graph_bytes + IMPORT_SLACK_BYTES
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the request body exceeds {limit} bytes")
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidArtifact("send the import as multipart/form-data")
    receiver = _Receiver(workdir, max_graph_bytes)
    parser = MultipartParser(boundary, receiver.callbacks(), max_size=limit)  # type: ignore[arg-type]
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise PayloadTooLarge(f"the request body exceeds {limit} bytes")
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError:
        raise InvalidArtifact("the multipart body is malformed") from None
    finally:
        receiver.close()
    out = receiver.out
    missing = [f for f in TEXT_FIELDS if f not in out.fields]
    if out.graph is None:
        missing.append(GRAPH_FIELD)
    if missing:
        raise InvalidArtifact(f"form fields missing: {', '.join(missing)}")
    return out
