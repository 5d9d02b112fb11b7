"""What an endpoint may ask for: one typed dependency per service the wiring point builds.

The wiring point (:mod:`governance.runtime`) puts each on the app's state through its slot;
an endpoint declares only the few it uses, as ``Annotated`` aliases::

    @router.get("/v1/policy")
    def current_policy(session: TransactionDep, caller: CanReadPolicy) -> PolicyOut: ...

The request's transaction and sessions are in :mod:`governance.kit.transaction`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import HTTPConnection

from governance.anchoring import Anchoring
from governance.audit.checkpoints import Checkpointer
from governance.audit.journal.guard import GuardedJournal
from governance.config import Settings
from governance.db.base import utcnow
from governance.db.health import DatabaseMonitor
from governance.errors import ServiceUnavailable
from governance.identity.cache import AuthCache
from governance.identity.sign_in import DEFAULT_LIFETIMES, Lifetimes
from governance.jobs import HeavyJobs
from governance.kit.slots import Slot
from governance.limits import Limits
from governance.policy.engine import PolicyEngine
from governance.records.recorder import RecordStore
from governance.vault.providers import ServiceKeyProvider
from inference.registry import ModelHost


@dataclass(frozen=True)
class Gate:
    """What the guards consult: identities, their anchoring, the policy and the rate limits."""

    read_sessions: sessionmaker[Session]
    auth_cache: AuthCache
    anchoring: Anchoring
    database: DatabaseMonitor
    policy: PolicyEngine
    limits: Limits
    # How long a request waits for an identity lookup: the audit write deadline.
    lookup_deadline: float
    # Signed-in sessions: looked up (and their idle clock moved) in a write transaction.
    sessions: sessionmaker[Session] | None = None
    session_lifetimes: Lifetimes = DEFAULT_LIFETIMES
    clock: Callable[[], datetime] = utcnow


SETTINGS: Slot[Settings] = Slot("settings")
JOURNAL: Slot[GuardedJournal] = Slot("journal")
POLICY: Slot[PolicyEngine] = Slot("policy")
KEYS: Slot[ServiceKeyProvider] = Slot("keys")
HOST: Slot[ModelHost] = Slot("host")
JOBS: Slot[HeavyJobs] = Slot("jobs")
RECORDS: Slot[RecordStore] = Slot("records")
GATE: Slot[Gate] = Slot("gate")
# The log's signer, once the process has started (None before).
CHECKPOINTER: Slot[Checkpointer | None] = Slot("checkpointer")
# Reload whatever the change counters say moved, so this process enforces a change at once.
RELOAD: Slot[Callable[[], None]] = Slot("reload")
# The readiness check that may block on the database (run off the event loop).
READINESS: Slot[Callable[[], dict[str, Any]]] = Slot("readiness")


def _signer(connection: HTTPConnection) -> Checkpointer:
    checkpointer = CHECKPOINTER.get(connection.app)
    if checkpointer is None:
        raise ServiceUnavailable("the audit signing key is not loaded")
    return checkpointer


SettingsDep = Annotated[Settings, Depends(SETTINGS)]
JournalDep = Annotated[GuardedJournal, Depends(JOURNAL)]
PolicyDep = Annotated[PolicyEngine, Depends(POLICY)]
KeysDep = Annotated[ServiceKeyProvider, Depends(KEYS)]
HostDep = Annotated[ModelHost, Depends(HOST)]
JobsDep = Annotated[HeavyJobs, Depends(JOBS)]
RecordsDep = Annotated[RecordStore, Depends(RECORDS)]
GateDep = Annotated[Gate, Depends(GATE)]
SignerDep = Annotated[Checkpointer, Depends(_signer)]
ReloadDep = Annotated[Callable[[], None], Depends(RELOAD)]
CheckpointerDep = Annotated[Checkpointer | None, Depends(CHECKPOINTER)]
