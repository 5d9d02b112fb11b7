"""TOTP second factor (RFC 6238): its secret sealed under the vault's KEK, codes checked once.

The secret is wrapped by the vault's key provider like a data key (AES-256-GCM under the current
KEK, bound to the principal by the associated data), so it is as safe at rest as the records
are. Retiring a KEK that wrapped TOTP secrets makes those secrets unreadable: the person then
sets their password again with their key, which enrols a new secret.
"""

from __future__ import annotations

import base64
import hmac
import io
from dataclasses import dataclass
from datetime import datetime

import pyotp
import qrcode
import qrcode.image.svg

from governance.vault.providers import KeyProvider, WrappedKey

ISSUER = "Warden"
# RFC 6238's recommendation: one step either side allows for clock drift.
WINDOW = 1


@dataclass(frozen=True)
class TotpEnrolment:
    """What a person scans once: the otpauth:// URI and the same as an SVG QR code."""

    uri: str
    qr_svg: str


def _aad(principal_id: int) -> bytes:
    return f"warden.totp/1|principal:{principal_id}".encode()


def new_secret() -> str:
    return pyotp.random_base32()


def seal(keys: KeyProvider, principal_id: int, secret: str) -> WrappedKey:
    return keys.wrap(secret.encode("ascii"), aad=_aad(principal_id))


def unseal(keys: KeyProvider, principal_id: int, wrapped: WrappedKey) -> str:
    return keys.unwrap(wrapped, aad=_aad(principal_id)).decode("ascii")


def enrolment(name: str, secret: str) -> TotpEnrolment:
    uri = pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=ISSUER)
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage)
    out = io.BytesIO()
    image.save(out)
    svg = base64.b64encode(out.getvalue()).decode("ascii")
    return TotpEnrolment(uri=uri, qr_svg=f"data:image/svg+xml;base64,{svg}")


def accepted_step(secret: str, code: str, now: datetime, last_step: int | None) -> int | None:
    """The time step ``code`` belongs to, within ±1 step of ``now`` and after ``last_step``.

    Returns:
        The step to remember as used, or None: wrong, stale, or already used (a replay).
    """
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - WINDOW, current + WINDOW + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None
