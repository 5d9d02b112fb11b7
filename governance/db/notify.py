"""PostgreSQL LISTEN/NOTIFY: a change committed by one process wakes every other at once.

:func:`governance.db.state.bump` sends ``NOTIFY warden_state`` in the transaction of the
change, and PostgreSQL delivers it only if and when that transaction commits, so a listener can
never hear of a change before the change is visible. :class:`ChangeListener` holds one
connection per server process that LISTENs and calls back on each notification; the process
then re-reads the change counters as its poll would.

The poll stays: notifications are a fast path, not the guarantee. A lost connection (a
restart, a network cut, a transaction-pooling proxy that does not pass notifications) only
brings back the poll period as the bound, and the listener reconnects with a growing pause and
calls back once on reconnecting, for whatever it missed meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from governance.db.state import CHANNEL

logger = logging.getLogger(__name__)

APPLICATION_NAME = "warden-listener"


def connect_args(database_url: str) -> dict[str, Any]:
    """psycopg connection parameters for a SQLAlchemy PostgreSQL URL (password included)."""
    url = make_url(database_url)
    params: dict[str, Any] = url.translate_connect_args(username="user", database="dbname")
    params.update({k: v for k, v in url.query.items() if isinstance(v, str)})
    return params


class ChangeListener:
    """A thread that LISTENs on :data:`CHANNEL` and calls ``on_change`` for each notification.

    Args:
        database_url: the PostgreSQL database (a SQLAlchemy URL).
        on_change: called in the listener's thread, once per notification and once after each
            (re)connection; it must be quick (setting an event is the intended use).
        max_pause: the longest pause between reconnection attempts, in seconds.
    """

    def __init__(
        self, database_url: str, on_change: Callable[[], None], *, max_pause: float = 5.0
    ) -> None:
        self._params = connect_args(database_url)
        self._on_change = on_change
        self._max_pause = max_pause
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connections = 0  # successful (re)connections, for tests and diagnostics

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="state-listener", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        pause = 0.1
        while not self._stop.is_set():
            try:
                self._listen()
                pause = 0.1
            except Exception as exc:
                # The type only: a connection error's text can name the host and user.
                logger.warning("change listener disconnected: %s", type(exc).__name__)
            if self._stop.wait(pause):
                return
            pause = min(pause * 2, self._max_pause)

    def _listen(self) -> None:
        with psycopg.connect(
            autocommit=True, connect_timeout=5, application_name=APPLICATION_NAME, **self._params
        ) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self.connections += 1
            self._on_change()  # whatever changed while this process was not listening
            while not self._stop.is_set():
                # Returns after the timeout so that a close is noticed within it.
                for _ in conn.notifies(timeout=0.5):
                    self._on_change()
