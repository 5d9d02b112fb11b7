"""``manifest.json``: the sha256 of every report file, signed with the audit log's Ed25519 key.

The signature is a C2SP signed note (the format of the log's checkpoints) over this text::

    warden.report/1
    <report id>
    <sha256 hex> <size> <file name>
    ...

one line per file, sorted by name. Anyone holding the log's verifier key
(``warden audit public-key``) can check a report folder offline: the note verifies, the text
matches the file list, every listed file hashes as stated, and no other file is present.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from governance.audit.errors import AuditVerificationError
from governance.audit.note import parse_vkey, sign_note, verify_signed_note, vkey_for
from governance.reports.errors import ReportVerificationError

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "warden.report/1"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")


@dataclass(frozen=True)
class ManifestCheck:
    """A verified report folder."""

    report_id: str
    files: dict[str, str]
    signer: str


def _body(report_id: str, files: dict[str, tuple[str, int]]) -> str:
    lines = [MANIFEST_FORMAT, report_id]
    lines += [f"{digest} {size} {name}" for name, (digest, size) in sorted(files.items())]
    return "\n".join(lines) + "\n"


def build_manifest(
    report_id: str, files: dict[str, bytes], *, origin: str, key: Ed25519PrivateKey
) -> bytes:
    """The signed manifest of ``files`` (name to content).

    Args:
        report_id: the report's id (also its folder name).
        files: every file of the report except the manifest.
        origin: the key name, the audit log's origin.
        key: the audit log's signing key.

    Returns:
        ``manifest.json`` bytes.
    """
    hashed = {name: (hashlib.sha256(data).hexdigest(), len(data)) for name, data in files.items()}
    doc: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "report_id": report_id,
        "algorithm": "sha256",
        "files": [
            {"name": name, "sha256": digest, "bytes": size}
            for name, (digest, size) in sorted(hashed.items())
        ],
        "signer": vkey_for(origin, key.public_key()),
        "signed_note": sign_note(_body(report_id, hashed), origin, key),
    }
    return json.dumps(doc, indent=2).encode("utf-8") + b"\n"


def _fail(message: str) -> ReportVerificationError:
    return ReportVerificationError(message)


def verify_report_dir(folder: Path, vkey: str) -> ManifestCheck:
    """Check a report folder against its signed manifest.

    Args:
        folder: the report folder.
        vkey: the trusted verifier key of the audit log (never the one the manifest names).

    Returns:
        What was verified.

    Raises:
        ReportVerificationError: naming the first problem found.
    """
    path = folder / MANIFEST_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        report_id = doc["report_id"]
        listed = {f["name"]: (f["sha256"], int(f["bytes"])) for f in doc["files"]}
        note = doc["signed_note"]
    except FileNotFoundError:
        raise _fail(f"{folder.name}: no {MANIFEST_FILE}") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise _fail(f"{folder.name}: {MANIFEST_FILE} is malformed") from None
    if doc.get("format") != MANIFEST_FORMAT or not isinstance(note, str):
        raise _fail(f"{folder.name}: {MANIFEST_FILE} is not a {MANIFEST_FORMAT} manifest")
    try:
        key = parse_vkey(vkey)
        body = verify_signed_note(note, key)
    except AuditVerificationError as exc:
        raise _fail(f"manifest signature: {exc.message}") from None
    if body != _body(report_id, listed):
        raise _fail("the manifest's file list differs from what was signed")
    for name in listed:
        if not _NAME_RE.fullmatch(name) or name == MANIFEST_FILE:
            raise _fail(f"the manifest lists an invalid file name {name[:64]!r}")
    present = {p.name for p in folder.iterdir()} - {MANIFEST_FILE}
    if extra := sorted(present - set(listed)):
        raise _fail(f"file {extra[0]!r} is not in the signed manifest")
    for name, (digest, size) in sorted(listed.items()):
        file = folder / name
        if not file.is_file():
            raise _fail(f"file {name!r} is missing")
        data = file.read_bytes()
        if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
            raise _fail(f"file {name!r} does not match its sha256 in the signed manifest")
    return ManifestCheck(
        report_id=report_id, files={n: d for n, (d, _) in listed.items()}, signer=key.name
    )
