"""Errors of the audit domain.

Messages describe what is wrong with the structure (a field, a size, a sequence number), never
the content of an entry: entries hold who did what and are not for error logs.
"""

from __future__ import annotations

from typing import Any, ClassVar

from governance.errors import VerificationFailed, WardenError


class AuditError(WardenError):
    """Base of every audit-log error. A failed audit write is a denial (fail closed)."""

    status_code: ClassVar[int] = 500
    title: ClassVar[str] = "Audit log error"
    type_slug: ClassVar[str] = "audit"


class CanonicalizationError(AuditError):
    """A value cannot be encoded as canonical JSON (RFC 8785), or bytes are not canonical."""

    status_code = 422
    title = "Not canonical JSON"
    type_slug = "audit-canonical"


class InvalidProofRequest(AuditError):
    """A proof or root was asked for sizes or indices that do not describe a tree."""

    status_code = 422
    title = "Invalid proof request"
    type_slug = "audit-proof-request"


class MissingNodeError(AuditError):
    """The node store lacks a hash the tree needs: the store is corrupt or incomplete."""

    status_code = 500
    title = "Audit tree node missing"
    type_slug = "audit-node-missing"


class NoteFormatError(AuditError):
    """A note, key name or checkpoint body cannot be signed as given."""

    status_code = 422
    title = "Invalid signed note input"
    type_slug = "audit-note-format"


class AuditVerificationError(AuditError, VerificationFailed):
    """Verification failed: a signature, proof, entry or bundle file is bad or malformed.

    Args:
        message: what failed, safe to show.
        first_bad_seq: the first log sequence number found bad, when an entry is to blame.
        checkpoint_size: the tree size of the first bad checkpoint, when one is to blame.
    """

    status_code = 422
    title = "Audit verification failed"
    type_slug = "audit-verification"

    def __init__(
        self,
        message: str,
        *,
        first_bad_seq: int | None = None,
        checkpoint_size: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        members: dict[str, Any] = dict(extra or {})
        if first_bad_seq is not None:
            members["first_bad_seq"] = first_bad_seq
        if checkpoint_size is not None:
            members["checkpoint_size"] = checkpoint_size
        super().__init__(message, extra=members)
        self.first_bad_seq = first_bad_seq
        self.checkpoint_size = checkpoint_size


class AuditNotFound(AuditError):
    """No entry or checkpoint at the asked position."""

    status_code = 404
    title = "Not found"
    type_slug = "audit-not-found"


class NotYetCheckpointed(AuditError):
    """The entries asked for are not covered by a signed checkpoint yet."""

    status_code = 409
    title = "Not yet checkpointed"
    type_slug = "audit-not-checkpointed"


class AuditIntegrityError(AuditError):
    """The stored log does not extend what the signer signed before: rolled back, rewritten or
    forked. The signer refuses to sign it and the server stops serving until someone looks."""

    status_code = 503
    title = "Audit log integrity failure"
    type_slug = "audit-integrity"
