"""The limits of one server process: its shared windows, the refusal summaries, a sync thread."""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from governance.audit.journal import Journal
from governance.limits import store
from governance.limits.policy import Limit, LimitsPolicy
from governance.limits.summary import RefusalSummaries
from governance.limits.window import SharedWindow

logger = logging.getLogger(__name__)

# How often local prediction counts are added up in the database: across n processes the
# predict limit can be passed by what the others take in one period.
SYNC_SECONDS = 0.2
# How often a process deletes the counter rows no process reads any more.
PURGE_SECONDS = 60.0


def address_subject(ip: str | None) -> str:
    """What an address is counted as: itself (IPv4), its /64 (IPv6: one host holds a whole
    /64, and would otherwise get a fresh limit per address), or ``unknown``."""
    if not ip:
        return "unknown"
    try:
        parsed = ipaddress.ip_address(ip)
    except ValueError:
        return "unknown"
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


# Failed sign-ins per name, from any address: far below ``failed_auth``, since a password is
# guessable where an API key is not (POST /v1/session).
SIGN_IN_FAILURES = Limit(requests=10, per_seconds=300)
# Sign-ins begun at the identity provider per address: each stores a flow row until it
# expires, whether or not the browser ever comes back (GET /v1/session/oidc/start).
SSO_STARTS = Limit(requests=30, per_seconds=300)


class Limits:
    """Rate limits shared by every process on the database (see governance/limits/window.py).

    Args:
        policy: the limits (``policies/limits.yaml``).
        sessions: sessions on the shared database.
        digest_key: the deployment's digest key (counter rows are keyed by HMAC).
        journal: where refusal summaries are appended.
        clock: seconds since the epoch (tests inject their own).
        sync_seconds: the sync thread's period.
    """

    def __init__(
        self,
        policy: LimitsPolicy,
        *,
        sessions: sessionmaker[Session],
        digest_key: bytes,
        journal: Journal,
        clock: Callable[[], float] = time.time,
        sync_seconds: float = SYNC_SECONDS,
    ) -> None:
        self.policy = policy
        self._sessions = sessions
        self._journal = journal
        self._clock = clock
        self._sync_seconds = sync_seconds

        def window(name: str, limit: Limit) -> SharedWindow:
            return SharedWindow(name, limit, digest_key=digest_key, sessions=sessions, clock=clock)

        self.failed_auth = window("failed_auth", policy.failed_auth)
        self.predict = window("predict", policy.predict)
        self.jobs = window("jobs", policy.jobs)
        self.sign_in = window("sign_in", SIGN_IN_FAILURES)
        self.sso_starts = window("sso_starts", SSO_STARTS)
        self.job_actions = policy.job_actions
        self.summaries = RefusalSummaries(clock)
        self._last_purge = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="limits-sync", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the thread, then add the last counts and write every open summary.

        Call before the journal closes: a summary of refusals is not lost at shutdown.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.tick(final=True)

    def _run(self) -> None:
        while not self._stop.wait(self._sync_seconds):
            self.tick()

    def tick(self, *, final: bool = False) -> None:
        """One sync: counts to the database, expired rows out, closed summaries to the log."""
        windows = (self.failed_auth, self.predict, self.jobs, self.sign_in, self.sso_starts)
        for window in windows:
            try:
                window.sync()
            except Exception as exc:
                logger.warning("rate counter sync failed: %s", type(exc).__name__)
        now = self._clock()
        if now - self._last_purge >= PURGE_SECONDS:
            self._last_purge = now
            try:
                with self._sessions.begin() as session:
                    store.purge(session, int(now))
            except Exception as exc:
                logger.warning("rate counter purge failed: %s", type(exc).__name__)
        events = self.summaries.take_due(everything=final)
        if events:
            try:
                self._journal.append_sync(events)
            except Exception as exc:
                self.summaries.give_back(events)
                logger.error(
                    "%d refusal summaries not yet audited: %s", len(events), type(exc).__name__
                )
