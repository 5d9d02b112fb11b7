"""The log's side of c2sp.org/tlog-witness: one ``add-checkpoint`` call to one witness."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from governance.audit.errors import AuditVerificationError
from governance.audit.note import open_note
from governance.config import WitnessSetting
from governance.kit.http import client as http_client
from governance.witness.cosignature import CosignerKey, parse_cosigner_vkey, verify_cosignature

__all__ = ["WitnessClient", "WitnessConflict", "WitnessRefused"]

# A witness answers with a few signature lines; anything longer is not a witness.
_MAX_RESPONSE = 64 * 1024


class WitnessRefused(Exception):
    """The witness did not cosign: an HTTP error, a timeout, or an answer that fails checks.

    Args:
        message: what happened, safe to log (no note content).
        status: the HTTP status, when the witness answered.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class WitnessConflict(WitnessRefused):
    """409: the witness holds another size for this log; retry with a proof from it."""

    def __init__(self, size: int) -> None:
        super().__init__(f"witness holds size {size}", 409)
        self.size = size


@dataclass
class WitnessClient:
    """Calls one configured witness, with a timeout on every call.

    Args:
        setting: its name, cosigner key and URL.
        timeout: seconds for connecting, sending and reading each answer.
    """

    setting: WitnessSetting
    timeout: float

    @property
    def key(self) -> CosignerKey:
        return parse_cosigner_vkey(self.setting.vkey)

    def add_checkpoint(self, old: int, proof: Sequence[bytes], note: str) -> str:
        """Ask the witness to cosign ``note``, consistent with its size ``old``.

        Returns:
            The witness's verified cosignature line (ending in a newline).

        Raises:
            WitnessConflict: the witness holds another size (its size is attached).
            WitnessRefused: any other answer, a timeout, or a line that does not verify.
        """
        lines = [f"old {old}", *(base64.b64encode(node).decode("ascii") for node in proof)]
        body = "".join(line + "\n" for line in lines) + "\n" + note
        url = self.setting.url.rstrip("/") + "/add-checkpoint"
        status, media_type, text = self._post(url, body.encode("utf-8"))
        if status == 409:
            if media_type.startswith("text/x.tlog.size") and (
                re.fullmatch(r"(0|[1-9][0-9]{0,19})\n", text)
            ):
                raise WitnessConflict(int(text[:-1]))
            raise WitnessRefused("witness sent a malformed 409", 409)
        if status != 200:
            raise WitnessRefused(f"witness refused with HTTP {status}", status)
        return self._own_line(note, text)

    def _post(self, url: str, body: bytes) -> tuple[int, str, str]:
        """POST and read a bounded answer within the timeout, counted for the whole call
        (httpx counts it per read, so a witness dripping bytes could hold a round forever)."""
        deadline = time.monotonic() + self.timeout
        chunks: list[bytes] = []
        total = 0
        try:
            with (
                http_client(timeout=self.timeout, follow_redirects=False) as client,
                client.stream("POST", url, content=body) as response,
            ):
                for chunk in response.iter_bytes():
                    total += len(chunk)
                    if total > _MAX_RESPONSE or time.monotonic() > deadline:
                        raise WitnessRefused("witness answer too large or too slow")
                    chunks.append(chunk)
                status, media_type = response.status_code, response.headers.get("content-type", "")
        except httpx.HTTPError as exc:
            raise WitnessRefused(f"witness unreachable ({type(exc).__name__})") from None
        try:
            return status, media_type, b"".join(chunks).decode("utf-8")
        except UnicodeDecodeError:
            raise WitnessRefused("witness answer is not UTF-8", status) from None

    def _own_line(self, note: str, answer: str) -> str:
        """The line of ``answer`` that is this witness's valid cosignature of ``note``."""
        key = self.key
        try:
            body, _ = open_note(note)
            _, signatures = open_note(note + answer)
        except AuditVerificationError:
            raise WitnessRefused("witness answer is not signature lines", 200) from None
        answered = answer.split("\n")[:-1]
        own = signatures[len(signatures) - len(answered) :]
        for line, signature in zip(answered, own, strict=True):
            if key.matches(signature):
                try:
                    verify_cosignature(body, signature, key)
                except AuditVerificationError as exc:
                    raise WitnessRefused(f"witness cosignature: {exc.message}", 200) from None
                return line + "\n"
        raise WitnessRefused("witness answered without a cosignature from its key", 200)
