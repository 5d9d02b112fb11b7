"""The witness's HTTP service: ``add-checkpoint`` of c2sp.org/tlog-witness, and the monitor read.

``POST /add-checkpoint`` takes ``old <size>``, up to 63 base64 consistency-proof lines, a blank
line and a signed checkpoint. The witness verifies the log's signature with the key it was
configured with, checks the proof from the last checkpoint it cosigned for that origin, records
the new one and answers with its cosignature line. It answers 404 for an unknown origin, 403
without a valid signature from the log's key, 400 for a malformed request or an old size above
the new one, 409 (``text/x.tlog.size``, its own size) when the old size is not the one it
holds, and 422 when the checkpoint is not consistent with it: nothing else is cosigned.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from governance.audit.errors import AuditVerificationError
from governance.audit.merkle import EMPTY_ROOT, verify_consistency
from governance.audit.note import (
    MAX_NOTE_BYTES,
    Checkpoint,
    VerifierKey,
    open_note,
    parse_checkpoint,
    verify_signed_note,
)
from governance.witness.cosignature import cosign
from governance.witness.identity import WitnessIdentity
from governance.witness.state import Cosigned, WitnessState

__all__ = ["SIZE_CONTENT_TYPE", "create_witness_app"]

log = logging.getLogger("warden.witness")

SIZE_CONTENT_TYPE = "text/x.tlog.size"
_MAX_PROOF_LINES = 63
# A proof line is 44 base64 characters and a newline; the rest is the note.
_MAX_BODY = MAX_NOTE_BYTES + 16 + _MAX_PROOF_LINES * 45
# Sizes are u64 in the protocol: at most 20 digits.
_OLD_LINE = re.compile(r"old (0|[1-9][0-9]{0,19})")


class _Refusal(Exception):
    def __init__(
        self, status: int, message: str, media_type: str = "text/plain; charset=utf-8"
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.media_type = media_type

    def response(self) -> Response:
        # Set outright: Starlette would add "; charset=utf-8" to a text/ media type.
        headers = {"content-type": self.media_type}
        return Response((self.message + "\n").encode("utf-8"), self.status, headers=headers)


@dataclass(frozen=True, slots=True)
class _Request:
    old: int
    proof: list[bytes]
    note: str


def _parse_request(raw: bytes) -> _Request:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Refusal(400, "request is not UTF-8") from None
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise _Refusal(400, "request needs an old size line, proof lines and a blank line")
    lines = head.split("\n")
    match = _OLD_LINE.fullmatch(lines[0])
    if match is None:
        raise _Refusal(400, "the first line must be 'old <size>'")
    if len(lines) - 1 > _MAX_PROOF_LINES:
        raise _Refusal(400, "too many consistency proof lines")
    proof: list[bytes] = []
    for line in lines[1:]:
        try:
            node = base64.b64decode(line.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError):
            raise _Refusal(400, "a proof line is not base64") from None
        if len(node) != 32:
            raise _Refusal(400, "a proof line is not a 32-byte hash")
        proof.append(node)
    return _Request(old=int(match.group(1)), proof=proof, note=note)


class _Witness:
    def __init__(
        self, identity: WitnessIdentity, logs: Sequence[VerifierKey], state: WitnessState
    ) -> None:
        self.identity = identity
        self.state = state
        self.logs: dict[str, list[VerifierKey]] = {}
        for key in logs:
            self.logs.setdefault(key.name, []).append(key)

    def _verified(self, note: str) -> tuple[str, Checkpoint]:
        """The checkpoint text and its parse, once a trusted log key's signature verifies."""
        try:
            body, _ = open_note(note)
            checkpoint = parse_checkpoint(body)
        except (AuditVerificationError, ValueError):
            # ValueError: a size with more digits than Python converts to an int.
            raise _Refusal(400, "the checkpoint is malformed") from None
        keys = self.logs.get(checkpoint.origin)
        if keys is None:
            raise _Refusal(404, "unknown log origin")
        for key in keys:
            try:
                body = verify_signed_note(note, key, allow_unknown_signatures=True)
            except AuditVerificationError:
                continue
            return body, parse_checkpoint(body)
        raise _Refusal(403, "no valid signature from the log's key")

    def add_checkpoint(self, request: _Request) -> str:
        body, checkpoint = self._verified(request.note)
        if request.old > checkpoint.size:
            raise _Refusal(400, "old size is larger than the checkpoint size")
        if checkpoint.size == 0 and checkpoint.root != EMPTY_ROOT:
            raise _Refusal(422, "a checkpoint of size 0 must have the empty tree's root")
        cosigned: list[str] = []

        def check(current: Cosigned | None) -> Cosigned:
            held = 0 if current is None else current.size
            if request.old != held:
                raise _Refusal(409, str(held), media_type=SIZE_CONTENT_TYPE)
            if request.old == 0 and request.proof:
                raise _Refusal(422, "a proof from size 0 must be empty")
            if current is not None and not verify_consistency(
                current.size, checkpoint.size, request.proof, current.root, checkpoint.root
            ):
                # Validly signed yet inconsistent: evidence of a forked or rewritten log.
                log.warning(
                    "log %s presented a checkpoint at size %d inconsistent with size %d",
                    checkpoint.origin,
                    checkpoint.size,
                    current.size,
                )
                raise _Refusal(422, "the consistency proof does not verify")
            line = cosign(body, self.identity.name, self.identity.private_key, int(time.time()))
            cosigned.append(line)
            signed = request.note + line
            return Cosigned(size=checkpoint.size, root=checkpoint.root, note=signed)

        self.state.advance(checkpoint.origin, check)
        return cosigned[0]

    def latest_note(self, origin_hash: str) -> str | None:
        for origin in self.logs:
            if hashlib.sha256(origin.encode("utf-8")).hexdigest() == origin_hash:
                latest = self.state.latest(origin)
                return None if latest is None else latest.note
        return None


async def _read_limited(request: Request) -> bytes:
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > _MAX_BODY:
            raise _Refusal(400, "request is too large")
        chunks.append(chunk)
    return b"".join(chunks)


def create_witness_app(
    identity: WitnessIdentity, logs: Sequence[VerifierKey], state: WitnessState
) -> Starlette:
    """The witness's ASGI app.

    Args:
        identity: the witness's name and cosigning key.
        logs: the verifier keys of the logs it witnesses (their names are the origins).
        state: where it records the latest checkpoint cosigned per origin.

    Returns:
        A Starlette app serving ``POST /add-checkpoint``, ``GET /<sha256(origin)>/checkpoint``
        and ``GET /healthz``.
    """
    witness = _Witness(identity, logs, state)

    async def add_checkpoint(request: Request) -> Response:
        try:
            parsed = _parse_request(await _read_limited(request))
            line = await run_in_threadpool(witness.add_checkpoint, parsed)
        except _Refusal as refusal:
            return refusal.response()
        return PlainTextResponse(line)

    async def checkpoint(request: Request) -> Response:
        note = await run_in_threadpool(witness.latest_note, request.path_params["origin_hash"])
        if note is None:
            return PlainTextResponse("no checkpoint cosigned for this log\n", 404)
        return PlainTextResponse(note)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    return Starlette(
        routes=[
            Route("/add-checkpoint", add_checkpoint, methods=["POST"]),
            Route("/{origin_hash:str}/checkpoint", checkpoint, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
