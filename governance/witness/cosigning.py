"""The log asks its witnesses to cosign its newest checkpoint, and stores what they return.

Runs off every request path: in a thread of the server of its own (:class:`CosignerThread`),
or from ``warden audit checkpoint`` / ``warden witness cosign``. Each witness is sent the
consistency proof from the size it last reported (after a 409, the size it names), and each
call has a timeout, so a slow or absent witness delays nothing but its own cosignature.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from governance.audit import merkle
from governance.audit.checkpoints import fetch_nodes
from governance.audit.errors import AuditError
from governance.audit.models import AuditCheckpoint
from governance.config import Settings, WitnessSetting
from governance.db.base import utcnow
from governance.witness.client import WitnessClient, WitnessConflict, WitnessRefused
from governance.witness.models import AuditCosignature

__all__ = ["CosignRound", "Cosigner", "CosignerThread", "start_cosigner", "stored_proof"]

log = logging.getLogger("warden.witness")

# A witness that answers 409 twice in a row is racing another submitter; give up this round.
_ATTEMPTS = 3


@dataclass
class CosignRound:
    """What one round achieved for the checkpoint at ``size`` (``None``: the log is unsigned)."""

    size: int | None
    cosigned: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


def stored_proof(sessions: sessionmaker[Session], old: int, size: int) -> list[bytes]:
    if old in (0, size):
        return []
    with sessions() as session:
        nodes = fetch_nodes(session, merkle.consistency_proof_keys(old, size))
    return merkle.consistency_proof(old, size, merkle.getter_from_mapping(nodes))


class Cosigner:
    """Collects cosignatures of the newest checkpoint from the configured witnesses.

    Args:
        witnesses: the witnesses to ask.
        timeout: seconds per HTTP call.
    """

    def __init__(self, witnesses: Sequence[WitnessSetting], *, timeout: float) -> None:
        self.clients = [WitnessClient(w, timeout) for w in witnesses]
        # The size each witness last reported; learnt from stored cosignatures at first.
        self._known: dict[str, int] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Cosigner | None:
        """The cosigner of the configured witnesses, or ``None`` when none is configured."""
        if not settings.witnesses:
            return None
        return cls(settings.witnesses, timeout=settings.witness_timeout_seconds)

    def cosign_latest(self, sessions: sessionmaker[Session]) -> CosignRound:
        """Ask every witness that has not cosigned the newest checkpoint yet.

        Args:
            sessions: sessions on the log's database.

        Returns:
            Which witnesses cosigned in this round and why the others did not.
        """
        with sessions() as session:
            row = session.execute(
                select(AuditCheckpoint.tree_size, AuditCheckpoint.note)
                .order_by(AuditCheckpoint.tree_size.desc())
                .limit(1)
            ).first()
            if row is None:
                return CosignRound(size=None)
            size, note = row
            have = set(
                session.execute(
                    select(AuditCosignature.witness, AuditCosignature.key_id).where(
                        AuditCosignature.tree_size == size
                    )
                ).all()
            )
        pending = [c for c in self.clients if (c.key.name, c.key.key_id) not in have]
        result = CosignRound(size=size)
        if not pending:
            return result
        with ThreadPoolExecutor(max_workers=len(pending)) as pool:
            asked = [(c, pool.submit(self._ask, c, sessions, size, note)) for c in pending]
        lines: list[tuple[WitnessClient, str]] = []
        for client, future in asked:
            try:
                lines.append((client, future.result()))
            except WitnessRefused as exc:
                result.refused[client.setting.name] = exc.message
                log.warning(
                    "witness %s did not cosign checkpoint %d: %s",
                    client.setting.name,
                    size,
                    exc.message,
                )
        with sessions.begin() as session:
            for client, line in lines:
                self._store(session, client, size, line)
                result.cosigned.append(client.setting.name)
        return result

    def _store(self, session: Session, client: WitnessClient, size: int, line: str) -> None:
        values = {
            "tree_size": size,
            "witness": client.key.name,
            "key_id": client.key.key_id,
            "line": line.rstrip("\n"),
            "received_at": utcnow(),
        }
        try:
            with session.begin_nested():
                session.execute(insert(AuditCosignature).values(**values))
        except IntegrityError:
            pass  # another process stored this witness's cosignature first

    def _ask(
        self, client: WitnessClient, sessions: sessionmaker[Session], size: int, note: str
    ) -> str:
        name = client.setting.name
        with self._lock:
            old = self._known.get(name)
        if old is None:
            with sessions() as session:
                old = (
                    session.execute(
                        select(func.max(AuditCosignature.tree_size)).where(
                            AuditCosignature.witness == client.key.name,
                            AuditCosignature.key_id == client.key.key_id,
                        )
                    ).scalar_one_or_none()
                    or 0
                )
        for _ in range(_ATTEMPTS):
            if old > size:
                # The witness saw a larger tree of this log than the database now holds.
                raise WitnessRefused(
                    f"witness holds size {old}, beyond the newest checkpoint {size}: "
                    "the log was truncated or forked"
                )
            try:
                proof = stored_proof(sessions, old, size)
            except AuditError:
                raise WitnessRefused(
                    f"the log's nodes cannot prove size {size} consistent with size {old}"
                ) from None
            try:
                line = client.add_checkpoint(old, proof, note)
            except WitnessConflict as conflict:
                old = conflict.size
                with self._lock:
                    self._known[name] = old
                continue
            with self._lock:
                self._known[name] = size
            return line
        raise WitnessRefused("witness kept answering 409")


class CosignerThread:
    """Runs :meth:`Cosigner.cosign_latest` in a thread of its own, every ``interval`` seconds.

    Args:
        cosigner: the configured witnesses.
        sessions: sessions on the log's database.
        interval: seconds between rounds; a round with nothing new to ask costs one read.
    """

    def __init__(
        self, cosigner: Cosigner, sessions: sessionmaker[Session], *, interval: float
    ) -> None:
        self.cosigner = cosigner
        self.sessions = sessions
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="witness-cosigner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._thread.join(timeout=timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.cosigner.cosign_latest(self.sessions)
            except Exception as exc:  # a database hiccup must not end the thread
                log.warning("witness round failed: %s", type(exc).__name__)


def start_cosigner(settings: Settings, sessions: sessionmaker[Session]) -> CosignerThread | None:
    """Start the server's cosigning thread, or return ``None`` when no witness is configured."""
    cosigner = Cosigner.from_settings(settings)
    if cosigner is None:
        return None
    thread = CosignerThread(
        cosigner, sessions, interval=min(1.0, settings.checkpoint_every_seconds)
    )
    thread.start()
    return thread
