"""The per-process service: engine, keys, policy engine, audit writer, served models.

One :class:`Runtime` lives in each server process. A small poller thread watches the change
counters (:mod:`governance.db.state`) and, when one moves, rebuilds what depends on it: a new
compiled policy swapped in, the auth cache dropped, serving models (re)loaded. That bounds how
long any process can act on a stale policy, key or model to about one poll period.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from governance.audit.checkpoints import Checkpointer
from governance.audit.writer import AuditWriter
from governance.config import Settings
from governance.db import make_engine, make_sessionmaker, state
from governance.errors import ConfigurationError, ServiceUnavailable
from governance.identity.cache import AuthCache
from governance.policy.engine import PolicyEngine
from governance.policy.rules import load_rules
from governance.policy.service import policy as policy_service
from governance.predict.recording import Recorder
from governance.records.recorder import RecordStore
from governance.registry.service import registry as registry_service
from governance.vault.errors import VaultError
from governance.vault.providers import ServiceKeyProvider, load_provider
from inference.batcher import MicroBatcher
from inference.device import select_device
from inference.errors import ManifestError
from inference.model import LoadedModel

logger = logging.getLogger(__name__)


class ServedModel:
    """A serving model version with its micro-batcher."""

    def __init__(self, version_id: int, model: LoadedModel, batcher: MicroBatcher) -> None:
        self.version_id = version_id
        self.model = model
        self.batcher = batcher

    @property
    def name(self) -> str:
        return self.model.manifest.name

    @property
    def version(self) -> str:
        return self.model.manifest.version


def open_key_provider(settings: Settings) -> ServiceKeyProvider:
    """The configured key provider; a wrong or unsafe key source stops the start."""
    try:
        return load_provider(settings.key_provider, path=settings.resolved_key_file)
    except VaultError as exc:
        raise ConfigurationError(str(exc)) from None


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings.resolved_database_url)
        self.sessions = make_sessionmaker(self.engine)
        self.keys = open_key_provider(settings)
        self.digest_key = self.keys.digest_key()
        self.device = select_device(settings.device)
        self.policy = PolicyEngine(settings.policies_dir / "model.conf", settings.decision_cache_size)
        self.auth_cache = AuthCache(settings.auth_cache_seconds)
        self.models: dict[str, ServedModel] = {}
        self.audit = AuditWriter(
            self.sessions,
            max_batch=settings.audit_batch_max,
            max_wait_ms=settings.audit_batch_wait_ms,
            on_commit=self._after_audit_commit,
        )
        self.checkpointer: Checkpointer | None = None
        self.recorder: Recorder = RecordStore(self)
        self._counters: dict[str, int] = {}
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._reload_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Load the policy and serving models, start the writer and the poller.

        Raises:
            ConfigurationError: the database is not migrated or holds no policy.
        """
        self.checkpointer = Checkpointer.from_settings(self.settings, self.sessions)
        with self.sessions() as session:
            self._require_schema(session)
            self._counters = state.read_all(session)
            self._load_policy(session)
            self._load_models(session)
        self.audit.start()
        self._poller = threading.Thread(target=self._poll, name="state-poller", daemon=True)
        self._poller.start()

    def stop(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
        self.audit.close()
        if self.checkpointer is not None:
            try:
                with self.sessions.begin() as session:
                    self.checkpointer.checkpoint(session, force=True)
            except Exception as exc:
                logger.warning("final checkpoint failed: %s", type(exc).__name__)
        for served in list(self.models.values()):
            served.batcher.close()
        self.models.clear()
        self.engine.dispose()

    def _require_schema(self, session: Session) -> None:
        try:
            session.execute(text("SELECT value FROM state_counters LIMIT 1"))
        except Exception:
            raise ConfigurationError(
                "the database has no Warden schema: run `warden init` first"
            ) from None

    def _after_audit_commit(self, session: Session, size: int) -> None:
        if self.checkpointer is not None:
            self.checkpointer.maybe_checkpoint(session, size)

    # -- reloads ---------------------------------------------------------------------------

    def _load_policy(self, session: Session) -> None:
        current = policy_service.current(session)
        if self.policy.version != current.version:
            self.policy.install(current.version, load_rules(current.rules))
            logger.info("policy version %d installed", current.version)

    def _load_models(self, session: Session) -> None:
        wanted = {row.name: row for row in registry_service.serving(session)}
        for name, row in wanted.items():
            served = self.models.get(name)
            if served is not None and served.version_id == row.id:
                continue
            try:
                model = LoadedModel.load(Path(row.artifact_dir), self.device)
            except ManifestError as exc:
                # A serving artifact that no longer verifies is not served (fail closed).
                logger.error("model %s %s refused at load: %s", name, row.version, exc)
                self._unload(name)
                continue
            batcher = MicroBatcher(
                model.forward_probabilities,
                max_batch_rows=self.settings.batch_max_rows,
                max_wait_ms=self.settings.batch_max_wait_ms,
            )
            batcher.start()
            old = self.models.get(name)
            self.models[name] = ServedModel(row.id, model, batcher)
            if old is not None:
                old.batcher.close()
        for name in [n for n in self.models if n not in wanted]:
            self._unload(name)

    def _unload(self, name: str) -> None:
        old = self.models.pop(name, None)
        if old is not None:
            old.batcher.close()

    def refresh(self) -> None:
        """Check the change counters once and reload whatever moved."""
        with self._reload_lock, self.sessions() as session:
            counters = state.read_all(session)
            moved = {k for k, v in counters.items() if self._counters.get(k) != v}
            if state.POLICY in moved:
                self._load_policy(session)
            if state.IDENTITY in moved:
                self.auth_cache.clear()
            if state.MODELS in moved:
                self._load_models(session)
            self._counters = counters

    def _poll(self) -> None:
        while not self._stop.wait(self.settings.state_poll_seconds):
            try:
                self.refresh()
            except Exception as exc:
                logger.warning("state poll failed: %s", type(exc).__name__)

    # -- hot-path helpers ------------------------------------------------------------------

    def served(self, name: str) -> ServedModel | None:
        return self.models.get(name)

    def check_ready(self) -> dict[str, object]:
        """Readiness: database reachable, policy loaded, serving models loaded."""
        try:
            with self.sessions() as session:
                session.execute(text("SELECT 1"))
                serving = {r.name for r in registry_service.serving(session)}
        except Exception:
            raise ServiceUnavailable("the database is not reachable") from None
        missing = sorted(serving - set(self.models))
        if self.policy.version is None:
            raise ServiceUnavailable("no policy is loaded")
        if missing:
            raise ServiceUnavailable(f"serving models not loaded: {', '.join(missing)}")
        return {"database": "ok", "policy_version": self.policy.version,
                "models": sorted(self.models)}
