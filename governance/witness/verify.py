"""Checking the stored cosignatures of the log's checkpoints against the configured witnesses.

Every stored line from a configured witness key must verify over its checkpoint's text (a line
that names the key and fails is tampering), and the checkpoint the verifier anchors on must
carry valid cosignatures from at least the required number of distinct configured witnesses.
Lines from keys nobody configured are ignored, as c2sp.org/signed-note asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.audit.errors import AuditVerificationError
from governance.audit.models import AuditCheckpoint
from governance.audit.note import open_note
from governance.config import WitnessSetting
from governance.witness.cosignature import CosignerKey, parse_cosigner_vkey, verify_cosignature
from governance.witness.models import AuditCosignature

__all__ = ["WitnessReport", "check_witnessed", "cosigned_note"]


@dataclass(frozen=True, slots=True)
class WitnessReport:
    """The configured witnesses (by setting name) whose valid cosignature ``checkpoint`` has."""

    checkpoint: int | None
    cosigners: tuple[str, ...]
    lines_checked: int


def cosigned_note(session: Session, size: int) -> str | None:
    """The stored checkpoint note at ``size`` with its stored cosignature lines appended."""
    note = session.get(AuditCheckpoint, size)
    if note is None:
        return None
    lines = session.scalars(
        select(AuditCosignature.line)
        .where(AuditCosignature.tree_size == size)
        .order_by(AuditCosignature.witness, AuditCosignature.key_id)
    ).all()
    return note.note + "".join(line + "\n" for line in lines)


def check_witnessed(
    session: Session,
    witnesses: Sequence[WitnessSetting],
    *,
    checkpoint: int | None,
    required: int,
) -> WitnessReport:
    """Verify every stored cosignature and require ``required`` on ``checkpoint``.

    Args:
        session: a session on the log's database (whose checkpoints were verified already).
        witnesses: the configured witnesses.
        checkpoint: the size of the checkpoint that must be cosigned (the newest verified).
        required: how many distinct configured witnesses must have cosigned it.

    Returns:
        The witnesses that cosigned ``checkpoint``.

    Raises:
        AuditVerificationError: a stored cosignature from a configured key that does not
            verify, or fewer than ``required`` valid cosignatures on ``checkpoint``.
    """
    keys: list[tuple[str, CosignerKey]] = [(w.name, parse_cosigner_vkey(w.vkey)) for w in witnesses]
    if required > len(keys):
        raise AuditVerificationError(
            f"{required} cosignatures required but only {len(keys)} witnesses are configured"
        )
    rows = session.execute(
        select(AuditCosignature.tree_size, AuditCosignature.line, AuditCheckpoint.note)
        .join(AuditCheckpoint, AuditCheckpoint.tree_size == AuditCosignature.tree_size)
        .order_by(AuditCosignature.tree_size)
    )
    cosigners: set[str] = set()
    checked = 0
    for size, line, note in rows:
        try:
            body, _ = open_note(note)
            _, (signature,) = open_note(body + "\n" + line + "\n")
        except (AuditVerificationError, ValueError):
            raise AuditVerificationError(
                f"checkpoint {size}: a stored cosignature line is malformed", checkpoint_size=size
            ) from None
        for name, key in keys:
            if not key.matches(signature):
                continue
            try:
                verify_cosignature(body, signature, key)
            except AuditVerificationError as exc:
                raise AuditVerificationError(
                    f"checkpoint {size}: witness {name}: {exc.message}", checkpoint_size=size
                ) from None
            checked += 1
            if size == checkpoint:
                cosigners.add(name)
    if len(cosigners) < required:
        where = "no checkpoint" if checkpoint is None else f"checkpoint {checkpoint}"
        missing = sorted({name for name, _ in keys} - cosigners)
        raise AuditVerificationError(
            f"{where} is cosigned by {len(cosigners)} of the {required} witnesses required "
            f"(not by {', '.join(missing)})",
            checkpoint_size=checkpoint,
        )
    return WitnessReport(
        checkpoint=checkpoint, cosigners=tuple(sorted(cosigners)), lines_checked=checked
    )
