"""The KEK rotation schedule: the current KEK is rotated and retired once it is old enough.

Erasure destroys a data key's wrapped copy in the database, but copies may survive elsewhere:
backups, PostgreSQL row versions that VACUUM has not reused, free space. Each is wrapped by a
KEK, so once every KEK that wrapped it is gone, no copy opens. The schedule bounds that time:
when the current KEK is ``kek_rotation_days`` old, a new KEK is made, every live data key is
rewrapped onto it (:func:`governance.vault.rotation.rotate_kek`), and every older KEK that no
live key needs any more is retired from the key file. An erasure receipt names the date by
which the current KEK is due to go (:meth:`KekSchedule.retire_by`).

A server checks on its periodic tick; among replicas the one holding the database lease runs
it (:mod:`governance.vault.leases`). Keys from the environment cannot be rotated here: the
schedule then logs that the rotation is due in the secret store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from governance.audit import log as audit_log
from governance.db.base import utcnow
from governance.kit.context import Context
from governance.vault import leases
from governance.vault.errors import KeyLifecycleError
from governance.vault.keys import data_keys
from governance.vault.providers import DatedKeks, KeyProvider, LocalKeyFileProvider
from governance.vault.rotation import KekRotation, rotate_kek

__all__ = ["LEASE", "KekSchedule"]

LEASE = "kek-rotation"
# Long enough for a rewrap of many keys; a holder that dies frees it at expiry.
_LEASE_TTL = timedelta(minutes=30)
logger = logging.getLogger(__name__)


@dataclass
class KekSchedule:
    """Rotates and retires the KEK when it is due.

    Args:
        sessions: one transaction per step.
        keys: the key provider.
        period: the current KEK's lifetime.
        holder: this process's name for the lease.
        now: the clock (tests inject one).
        check_every: how often :meth:`tick` looks.
    """

    sessions: sessionmaker[Session]
    keys: KeyProvider
    period: timedelta
    holder: str
    now: Callable[[], datetime] = utcnow
    check_every: timedelta = timedelta(seconds=60)
    _next_check: datetime | None = field(default=None, init=False)

    def current_since(self) -> datetime | None:
        """When the current KEK was created; None when the provider does not say."""
        if isinstance(self.keys, DatedKeks):
            return self.keys.kek_created(self.keys.key_id)
        return None

    def retire_by(self) -> datetime | None:
        """The date by which the current KEK is due to be rotated out and retired."""
        since = self.current_since()
        return None if since is None else since + self.period

    def due(self) -> bool:
        deadline = self.retire_by()
        return deadline is not None and self.now() >= deadline

    def tick(self) -> KekRotation | None:
        """Run the schedule if due and not checked within ``check_every`` (the server's tick)."""
        now = self.now()
        if self._next_check is not None and now < self._next_check:
            return None
        self._next_check = now + self.check_every
        return self.run_if_due()

    def run_if_due(self) -> KekRotation | None:
        """Rotate the KEK, rewrap every live key, retire the old KEKs: if due, and if this
        process gets the lease.

        Returns:
            The rotation done, or None (not due, another replica runs it, or the provider's
            keys are managed elsewhere).

        Raises:
            KeyProviderError, DecryptionError: a rewrap failed (the old KEK is kept).
        """
        if not self.due():
            return None
        now = self.now()
        if not leases.acquire(self.sessions, LEASE, self.holder, now=now, ttl=_LEASE_TTL):
            return None
        try:
            if isinstance(self.keys, LocalKeyFileProvider):
                self.keys.reload()  # another replica may have rotated a moment ago
            if not self.due():
                return None
            before = self.keys.key_id
            try:
                if isinstance(self.keys, LocalKeyFileProvider):
                    self.keys.rotate(now=now)
                else:
                    self.keys.rotate()
            except KeyLifecycleError:
                logger.warning(
                    "KEK %s is due for rotation: rotate it in the secret store that holds it",
                    before,
                )
                return None
            days = self.period / timedelta(days=1)
            done = rotate_kek(
                sessions=self.sessions,
                keys=self.keys,
                ctx=Context(),
                reason=f"scheduled: the KEK is rotated every {days:g} days",
                rotate_provider=False,
                from_kek=before,
            )
            self._retire_old()
            return done
        finally:
            leases.release(self.sessions, LEASE, self.holder, now=self.now())

    def _retire_old(self) -> None:
        keys = self.keys
        if not isinstance(keys, LocalKeyFileProvider):
            return
        for kek_id in keys.available_kek_ids():
            if kek_id == keys.key_id:
                continue
            with self.sessions.begin() as session:
                # Under the head lock, as key creation: no key is being wrapped under it now.
                audit_log.lock_head(session)
                if data_keys.count_under_kek(session, kek_id):
                    logger.warning("KEK %s still wraps live data keys: not retired", kek_id)
                    continue
                keys.retire(kek_id)
                audit_log.append(
                    session,
                    [
                        Context().event(
                            "key.retire",
                            "retire",
                            resource={"keys": "kek"},
                            details={"kind": "kek", "kek_id": kek_id, "current": keys.key_id},
                        )
                    ],
                )
