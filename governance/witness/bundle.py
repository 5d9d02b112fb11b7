"""Cosignatures in an export bundle: ``cosigned.note``, the bundle's largest checkpoint with the
witnesses' cosignature lines appended (c2sp.org/tlog-witness calls it the cosigned checkpoint).

The file is optional and outside what ``verify_bundle`` checks; ``verify-bundle --witnesses N``
requires it to carry exactly the text of the bundle's verified largest checkpoint and valid
cosignatures from N distinct configured witnesses.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.orm import Session

from governance.audit.errors import AuditVerificationError
from governance.audit.note import MAX_NOTE_BYTES, make_checkpoint_body, open_note
from governance.config import WitnessSetting
from governance.witness.cosignature import cosignatures_of, parse_cosigner_vkey
from governance.witness.verify import WitnessReport, cosigned_note

__all__ = ["COSIGNED_FILE", "check_bundle_witnessed", "write_cosigned"]

COSIGNED_FILE = "cosigned.note"


def write_cosigned(session: Session, bundle_dir: Path, size: int) -> int:
    """Write ``cosigned.note`` for the checkpoint at ``size``.

    Returns:
        How many cosignature lines it carries (0: no file was written).
    """
    note = cosigned_note(session, size)
    if note is None:
        return 0
    _, signatures = open_note(note)
    if len(signatures) < 2:
        return 0
    (bundle_dir / COSIGNED_FILE).write_bytes(note.encode("utf-8"))
    return len(signatures) - 1


def check_bundle_witnessed(
    bundle_dir: Path,
    *,
    origin: str,
    size: int,
    root: bytes,
    witnesses: Sequence[WitnessSetting],
    required: int,
) -> WitnessReport:
    """Require ``required`` configured witnesses' cosignatures on the bundle's checkpoint.

    Args:
        bundle_dir: the bundle, already verified (``verify_bundle``).
        origin: its origin; ``size`` and ``root``: its largest checkpoint's.
        witnesses: the witnesses the verifier trusts.
        required: how many distinct ones must have cosigned.

    Raises:
        AuditVerificationError: no or an unreadable ``cosigned.note``, one for another tree, a
            bad cosignature from a configured key, or too few cosignatures.
    """
    if required > len(witnesses):
        raise AuditVerificationError(
            f"{required} cosignatures required but only {len(witnesses)} witnesses are configured"
        )
    path = bundle_dir / COSIGNED_FILE
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_NOTE_BYTES + 1)
    except OSError:
        raise AuditVerificationError(f"the bundle has no readable {COSIGNED_FILE}") from None
    body, _ = open_note(raw)
    if body != make_checkpoint_body(origin, size, root):
        raise AuditVerificationError(
            f"{COSIGNED_FILE} is not the bundle's checkpoint at tree size {size}",
            checkpoint_size=size,
        )
    names = {parse_cosigner_vkey(w.vkey).vkey(): w.name for w in witnesses}
    found = cosignatures_of(raw.decode("utf-8"), [parse_cosigner_vkey(v) for v in names])
    cosigners = tuple(sorted(names[vkey] for vkey in found))
    if len(cosigners) < required:
        missing = sorted(set(names.values()) - set(cosigners))
        raise AuditVerificationError(
            f"checkpoint {size} is cosigned by {len(cosigners)} of the {required} witnesses "
            f"required (not by {', '.join(missing)})",
            checkpoint_size=size,
        )
    return WitnessReport(checkpoint=size, cosigners=cosigners, lines_checked=len(found))
