"""Following an erasure until the destroyed keys' bytes have left the database files.

On SQLite an erasure is not done when it commits: the write-ahead log still holds page images
with the wrapped keys, which the current KEK opens. A truncating checkpoint removes them, but
cannot finish while another connection reads an older snapshot. Each erasure therefore gets a
scrub row (``pending``) in its own transaction; a checkpoint that succeeds marks every scrub
that was pending before it ``done`` with the time, and one that stays busy is retried with
backoff from the server's periodic tick (:meth:`Scrubs.tick`), each try waiting at most
:data:`~governance.vault.wal.CHECKPOINT_BUSY_MS` so that no request and no group commit waits
behind it. On PostgreSQL old row versions stay until VACUUM reuses their space, which Warden
cannot force: the scrub is ``residual`` from the start.

Either way copies in backups remain; what ends every exposure is the KEK rotation schedule
(:mod:`governance.vault.kek_schedule`): the receipt names the date by which the current KEK is
retired.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from governance.db.base import utcnow
from governance.records.models import SCRUB_DONE, SCRUB_PENDING, SCRUB_RESIDUAL, ErasureScrub
from governance.vault.wal import checkpoint_wal

__all__ = ["Scrubs", "scrub_status_for"]

logger = logging.getLogger(__name__)
_FIRST_DELAY_S = 0.1
_MAX_DELAY_S = 30.0
# With nothing pending, how often a server looks for scrubs left pending by other processes.
_IDLE_POLL_S = 30.0
# Retries beyond this many are logged: a reader that never ends keeps the keys on disk.
_WARN_AFTER = 20


def scrub_status_for(engine: Engine) -> str:
    """The status a new erasure's scrub starts in on this database."""
    return SCRUB_PENDING if engine.dialect.name == "sqlite" else SCRUB_RESIDUAL


class Scrubs:
    """Checkpoints SQLite's log for pending scrubs, retrying with backoff.

    Args:
        engine: the service's engine (the checkpoint runs on one of its connections).
        sessions: write transactions (marking scrubs).
        read_sessions: reads that never take SQLite's write lock.
        clock: monotonic seconds (tests inject one).
    """

    def __init__(
        self,
        engine: Engine,
        sessions: sessionmaker[Session],
        read_sessions: sessionmaker[Session] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._sessions = sessions
        self._read_sessions = read_sessions or sessions
        self._clock = clock
        self._delay = _FIRST_DELAY_S
        self._next_at = clock()
        self._failures = 0

    def __repr__(self) -> str:
        return f"Scrubs(failures={self._failures}, delay={self._delay})"

    def attempt(self) -> bool:
        """Try once to checkpoint the log for every pending scrub.

        Returns:
            True when nothing is pending any more, False when a reader kept the log busy.
        """
        if self._engine.dialect.name != "sqlite":
            return True
        with self._read_sessions() as session:
            pending = list(
                session.scalars(
                    select(ErasureScrub.receipt_id).where(ErasureScrub.status == SCRUB_PENDING)
                )
            )
        if not pending:
            return True
        # Pending scrubs were read first: each erasure they follow committed before this
        # checkpoint began, so a checkpoint that succeeds removed its keys' old pages.
        done = bool(checkpoint_wal(self._engine))
        now = utcnow()
        values: dict[str, object] = {
            "attempts": ErasureScrub.attempts + 1,
            "last_try_at": now,
        }
        if done:
            values.update(status=SCRUB_DONE, removed_at=now)
        with self._sessions.begin() as session:
            session.execute(
                update(ErasureScrub)
                .where(
                    ErasureScrub.receipt_id.in_(pending),
                    ErasureScrub.status == SCRUB_PENDING,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        return done

    def note_pending(self) -> None:
        """An erasure in this process left its scrub pending: try again soon."""
        self._delay = _FIRST_DELAY_S
        self._next_at = self._clock() + self._delay

    def tick(self) -> None:
        """Retry pending scrubs when the backoff allows (the server's periodic tick)."""
        now = self._clock()
        if now < self._next_at:
            return
        if self.attempt():
            self._failures = 0
            self._delay = _FIRST_DELAY_S
            self._next_at = now + _IDLE_POLL_S
            return
        self._failures += 1
        if self._failures == _WARN_AFTER:
            logger.warning(
                "erased keys are still in the SQLite log after %d checkpoints: a long-lived "
                "reader keeps it busy",
                self._failures,
            )
        self._delay = min(self._delay * 2, _MAX_DELAY_S)
        self._next_at = now + self._delay

    def settle(self, *, within_s: float) -> bool:
        """Retry with backoff for up to ``within_s`` seconds (a command that has no tick).

        Returns:
            Whether nothing is pending any more.
        """
        deadline = self._clock() + within_s
        delay = _FIRST_DELAY_S
        while True:
            if self.attempt():
                return True
            if self._clock() + delay > deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY_S)
