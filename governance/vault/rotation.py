"""KEK rotation: a new KEK version, then every live DEK rewrapped onto it, in batches.

Records are never re-encrypted (their DEKs do not change) and the hot path's cached DEKs stay
valid, so serving continues through a rotation without a failed request. Unlike services, this
owns its transactions: one per batch, so a long rewrap never holds the write lock for long, and
an interrupted rotation is finished by running it again with ``rotate_provider=False``.

A data key created while the rotation runs may have been wrapped under the old KEK by a
transaction that commits after the batches looked (PostgreSQL's READ COMMITTED does not show
it to them). Creating a key takes the audit log's head lock before wrapping, so the last pass
takes it too: every key wrapped before it is committed and seen, every key wrapped after it
reads the new KEK.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from governance.audit import log as audit_log
from governance.kit.context import Context
from governance.vault.keys import data_keys
from governance.vault.providers import KeyProvider

__all__ = ["KekRotation", "rotate_kek"]


@dataclass(frozen=True)
class KekRotation:
    from_kek: str
    to_kek: str
    rewrapped: int
    batches: int


def rotate_kek(
    *,
    sessions: sessionmaker[Session],
    keys: KeyProvider,
    ctx: Context,
    reason: str,
    rotate_provider: bool = True,
    batch_size: int = 500,
    from_kek: str | None = None,
) -> KekRotation:
    """Rotate the KEK and rewrap every live DEK onto the current version.

    Args:
        sessions: makes one transaction per batch.
        keys: the key provider.
        ctx: who rotates, for the audit entry.
        reason: why (stored and audited).
        rotate_provider: create a new KEK version first; False only rewraps onto the current
            one (after a rotation made in an external secret store, or to finish an
            interrupted pass).
        batch_size: rows per transaction.
        from_kek: the KEK that was current before a rotation the caller made itself
            (with ``rotate_provider=False``), for the record.

    Returns:
        The KEK ids before and after and how many DEKs were rewrapped.

    Raises:
        KeyLifecycleError: the provider cannot rotate (keys managed elsewhere).
        KeyProviderError: an old KEK needed for a rewrap is unavailable.
        DecryptionError: a wrapped DEK was altered (that batch rolls back, earlier ones stay).
    """
    before = keys.key_id
    after = keys.rotate() if rotate_provider else before
    if from_kek is not None and not rotate_provider:
        before = from_kek
    total, batches, final = 0, 0, False
    while True:
        with sessions.begin() as session:
            if final:
                audit_log.lock_head(session)  # waits for keys being created (module docstring)
            done = data_keys.rewrap_batch(session, keys, limit=batch_size)
        batches += 1
        total += done
        if done < batch_size:
            if final:
                break
            final = True
    with sessions.begin() as session:
        data_keys.log_kek_rotation(
            session, ctx, from_kek=before, to_kek=after, rewrapped=total, reason=reason
        )
    return KekRotation(from_kek=before, to_kek=after, rewrapped=total, batches=batches)
