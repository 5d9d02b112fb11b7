"""Pushing old page images of erased keys out of SQLite's write-ahead log.

After an erasure commits, the log still holds the page images written when the keys were
created or last rewrapped. A truncating checkpoint copies the newest pages into the database
file (where ``secure_delete`` zeroed the freed bytes) and empties the log. It cannot finish
while another connection reads an older snapshot: SQLite then answers busy, and the caller
must try again later (:mod:`governance.records.scrubs`), never take it as done.
"""

from __future__ import annotations

from sqlalchemy import Engine

__all__ = ["CHECKPOINT_BUSY_MS", "checkpoint_wal"]

# A checkpoint holds the write lock while it waits for readers: a short wait per try keeps
# group commits flowing; the caller retries with backoff.
CHECKPOINT_BUSY_MS = 50


def checkpoint_wal(engine: Engine, *, busy_ms: int = CHECKPOINT_BUSY_MS) -> bool | None:
    """Run ``PRAGMA wal_checkpoint(TRUNCATE)`` once, waiting at most ``busy_ms`` for readers.

    Args:
        engine: the service's engine.
        busy_ms: how long SQLite may wait for readers and writers before answering busy.

    Returns:
        True when the log was fully checkpointed and truncated, False when it stayed busy,
        None on a database without such a log (PostgreSQL).
    """
    if engine.dialect.name != "sqlite":
        return None
    # The raw connection runs in autocommit: a checkpoint cannot run inside a transaction,
    # and the engine's connections begin one (BEGIN IMMEDIATE) on first use.
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            (before,) = cursor.execute("PRAGMA busy_timeout").fetchone()
            cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
            try:
                busy, _, _ = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                cursor.execute(f"PRAGMA busy_timeout={int(before)}")
        finally:
            cursor.close()
    finally:
        raw.close()
    return not busy
