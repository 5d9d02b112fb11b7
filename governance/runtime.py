"""The per-process service: engine, keys, policy engine, audit writer, served models.

One :class:`Runtime` lives in each server process. A small poller thread watches the change
counters (:mod:`governance.db.state`) and, when one moves, rebuilds what depends on it: a new
compiled policy swapped in, the auth cache dropped, serving models (re)loaded. That bounds how
long any process can act on a stale policy, key or model to about one poll period. On
PostgreSQL a listener (:mod:`governance.db.notify`) wakes the poller as soon as another process
commits a change, so it follows within milliseconds while notifications flow.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from pathlib import Path

import torch
from sqlalchemy import text
from sqlalchemy.orm import Session
from starlette.applications import Starlette

from governance.anchoring import Anchoring
from governance.api import dependencies as deps
from governance.api.strangers import AddressLimit
from governance.audit.checkpoints import Checkpointer, CheckpointPolicy
from governance.audit.journal import Journal
from governance.audit.journal.guard import GuardedJournal
from governance.audit.journal.local import LocalJournal
from governance.audit.journal.remote import ProcessJournal
from governance.audit.writer import AuditWriter
from governance.config import Settings
from governance.db import make_engine, make_sessionmaker, state
from governance.db.engine import ConnectionLimits
from governance.db.health import DatabaseMonitor
from governance.db.notify import ChangeListener
from governance.errors import ConfigurationError, ServiceUnavailable
from governance.fairness.thresholds import anchor as thresholds_anchor
from governance.fairness.thresholds.versions import thresholds_store
from governance.identity.cache import AuthCache
from governance.identity.sign_in import Lifetimes
from governance.jobs import HeavyJobs
from governance.kit import metrics, transaction
from governance.kit.events import EVENT_LOG
from governance.kit.forwarded import PROXIES, TrustedProxies, parse_networks
from governance.kit.middleware import STRANGERS
from governance.limits import Limits, load_limits
from governance.policy import anchor as policy_anchor
from governance.policy.engine import PolicyEngine
from governance.policy.rules import load_rules
from governance.policy.service import policy as policy_service
from governance.policy_files import check_policy_files
from governance.predict.pipeline import PREDICTOR, Predictor
from governance.predict.recording import Recorder
from governance.records.recorder import RecordStore
from governance.records.sink import RecordSink
from governance.registry import anchor as stage_anchor
from governance.registry.models import ModelVersion
from governance.registry.service import registry as registry_service
from governance.vault.errors import VaultError
from governance.vault.providers import ServiceKeyProvider, load_provider
from inference.device import select_device
from inference.errors import ManifestError
from inference.registry import ModelHost

logger = logging.getLogger(__name__)


def open_key_provider(settings: Settings) -> ServiceKeyProvider:
    """The configured key provider; a wrong or unsafe key source stops the start."""
    try:
        return load_provider(settings.key_provider, path=settings.resolved_key_file)
    except VaultError as exc:
        raise ConfigurationError(str(exc)) from None


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        metrics.follow_environment()
        # Timeouts and keepalives: a frozen or unreachable database is a 503, not a hang.
        limits = ConnectionLimits.from_settings(settings)
        self.engine = make_engine(settings.resolved_database_url, limits=limits)
        self.sessions = make_sessionmaker(self.engine)
        # Read-only work (the change poller, API key lookups, readiness) never takes SQLite's
        # write lock; see make_engine.
        self.read_engine = make_engine(
            settings.resolved_database_url, pool_size=4, read_only=True, limits=limits
        )
        self.database = DatabaseMonitor(
            make_engine(settings.resolved_database_url, pool_size=1, read_only=True, limits=limits),
            deadline=settings.db_probe_deadline_ms / 1000.0,
            interval=settings.db_probe_interval_seconds,
        )
        self.read_sessions = make_sessionmaker(self.read_engine)
        self.keys = open_key_provider(settings)
        self.digest_key = self.keys.digest_key()
        self.device = select_device(settings.device)
        self.policy = PolicyEngine(
            settings.policies_dir / "model.conf", settings.decision_cache_size
        )
        self.auth_cache = AuthCache(settings.auth_cache_seconds)
        # Rows the database holds that no audit entry vouches for (governance/anchoring.py).
        self.anchoring = Anchoring()
        self.jobs = HeavyJobs(
            concurrency=settings.heavy_jobs_concurrency, queue_max=settings.heavy_jobs_queue
        )
        if self.device.type == "cpu":
            # Small tabular models on a shared CPU: one intra-op thread per forward pass keeps
            # the batcher's worker from fighting the event loop (measured in bench/batching).
            torch.set_num_threads(settings.torch_threads)
        self.host = ModelHost(
            device=self.device,
            max_batch_rows=settings.batch_max_rows,
            max_wait_ms=settings.batch_max_wait_ms,
            max_queue_rows=settings.batch_max_queue_rows,
            execution=None if settings.batch_execution == "auto" else settings.batch_execution,
            onnx_threads=settings.onnx_threads,
            on_batch=metrics.observe_batch,
        )
        self.checkpointer: Checkpointer | None = None
        self.records = RecordStore(
            keys=self.keys,
            settings=settings,
            engine=self.engine,
            sessions=self.sessions,
            read_sessions=self.read_sessions,
        )
        self.recorder: Recorder = self.records
        self.audit = GuardedJournal(
            self._journal(settings),
            deadline=settings.audit_write_deadline_ms / 1000.0,
            database=self._refusal,
        )
        # Rate limits shared through the database; refusal summaries go to the journal.
        self.limits = Limits(
            load_limits(settings.policies_dir),
            sessions=self.sessions,
            digest_key=self.digest_key,
            journal=self.audit,
        )
        self.proxies = TrustedProxies(
            parse_networks(settings.trusted_proxies), settings.forwarded_header
        )
        self._counters: dict[str, int] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()  # set: poll now (a notification, or stopping)
        self._poller: threading.Thread | None = None
        self._listener: ChangeListener | None = None
        if settings.state_notify and self.engine.dialect.name == "postgresql":
            self._listener = ChangeListener(settings.resolved_database_url, self._wake.set)
        self._reload_lock = threading.Lock()
        self._app: Starlette | None = None

    def expose(self, app: Starlette) -> None:
        """Put what this runtime built on the app, each under its typed slot (the only way
        endpoints reach it: governance/api/dependencies.py)."""
        self._app = app
        deps.SETTINGS.put(app, self.settings)
        EVENT_LOG.put(app, self.audit)
        STRANGERS.put(app, AddressLimit())
        PROXIES.put(app, self.proxies)
        transaction.ENGINE.put(app, self.engine)
        transaction.SESSIONS.put(app, self.sessions)
        transaction.READ_SESSIONS.put(app, self.read_sessions)
        deps.JOURNAL.put(app, self.audit)
        deps.POLICY.put(app, self.policy)
        deps.KEYS.put(app, self.keys)
        deps.HOST.put(app, self.host)
        deps.JOBS.put(app, self.jobs)
        deps.RECORDS.put(app, self.records)
        deps.CHECKPOINTER.put(app, self.checkpointer)
        deps.RELOAD.put(app, self.refresh)
        deps.READINESS.put(app, self.check_ready)
        PREDICTOR.put(
            app,
            Predictor(
                host=self.host,
                journal=self.audit,
                recorder=self.recorder,
                records=self.records,
                keys=self.keys,
                digest_key=self.digest_key,
                max_batch_records=self.settings.max_batch_records,
            ),
        )
        deps.GATE.put(
            app,
            deps.Gate(
                read_sessions=self.read_sessions,
                auth_cache=self.auth_cache,
                anchoring=self.anchoring,
                database=self.database,
                policy=self.policy,
                limits=self.limits,
                lookup_deadline=self.settings.audit_write_deadline_ms / 1000,
                sessions=self.sessions,
                session_lifetimes=Lifetimes(
                    idle=timedelta(minutes=self.settings.session_idle_minutes),
                    absolute=timedelta(hours=self.settings.session_max_hours),
                ),
            ),
        )

    def _journal(self, settings: Settings) -> Journal:
        # Either way the group commit signs the checkpoints that fall due as the log grows.
        checkpoint = CheckpointPolicy.from_settings(settings)
        if settings.audit_writer == "process":
            return ProcessJournal(
                database_url=settings.resolved_database_url,
                max_batch=settings.audit_batch_max,
                max_wait_ms=settings.audit_batch_wait_ms,
                max_idle_ms=settings.audit_batch_idle_ms,
                on_commit=None,
                evict=self.records.evict,
                checkpoint=checkpoint,
                limits=ConnectionLimits.from_settings(settings),
                sink=RecordSink(),
                json_logs=settings.log_json,
            )
        writer = AuditWriter(
            self.engine,
            max_batch=settings.audit_batch_max,
            max_wait_ms=settings.audit_batch_wait_ms,
            max_idle_ms=settings.audit_batch_idle_ms,
        )
        return LocalJournal(
            writer, evict=self.records.evict, checkpoint=checkpoint, sink=RecordSink()
        )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Load the policy and serving models, start the writer and the poller.

        Raises:
            ConfigurationError: the database is not migrated or holds no policy, or
                ``policies/default_policy.yaml`` or ``policies/retention.yaml`` does not
                validate.
        """
        # Found now, not by the first request that needs them.
        check_policy_files(self.settings.policies_dir, refusing="start")
        self.checkpointer = Checkpointer.from_settings(self.settings, self.sessions)
        if self._app is not None:
            deps.CHECKPOINTER.put(self._app, self.checkpointer)
        with self.sessions() as session:
            self._require_schema(session)
            # A log that does not extend the signer's last checkpoint is refused from the start.
            self.checkpointer.refusal(session)
            self._counters = state.read_all(session)
            self._load_policy(session)
            self._load_models(session)
            self._check_thresholds(session)
        self.audit.start()
        self.limits.start()
        self.database.start()
        self._poller = threading.Thread(target=self._poll, name="state-poller", daemon=True)
        self._poller.start()
        if self._listener is not None:
            self._listener.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._listener is not None:
            self._listener.close()
        if self._poller is not None:
            self._poller.join(timeout=5)
        self.database.close()
        self.limits.close()  # its last summaries go to the journal before it closes
        self.audit.close()
        if self.checkpointer is not None:
            try:
                with self.sessions.begin() as session:
                    self.checkpointer.checkpoint(session, force=True)
            except Exception as exc:
                logger.warning("final checkpoint failed: %s", type(exc).__name__)
        self.host.close(timeout=10)
        self.engine.dispose()
        self.read_engine.dispose()
        metrics.process_exited()

    def _require_schema(self, session: Session) -> None:
        try:
            session.execute(text("SELECT value FROM state_counters LIMIT 1"))
        except Exception:
            raise ConfigurationError(
                "the database has no Warden schema: run `warden init` first"
            ) from None

    def _refusal(self) -> str | None:
        """Why appends are refused at once: the signer refused the log, or the database is down."""
        checkpointer = self.checkpointer
        if checkpointer is not None and checkpointer.failure is not None:
            return f"audit log integrity: {checkpointer.failure}"
        return self.database.problem()

    def _checkpoint_if_due(self) -> None:
        # The group commit signs checkpoints as the log grows; this signs the tail of a log
        # that has gone quiet, once the period has passed.
        if self.checkpointer is not None:
            self.checkpointer.tick(self.sessions)

    # -- reloads ---------------------------------------------------------------------------

    def _load_policy(self, session: Session) -> None:
        current = policy_service.current(session)
        if self.policy.version != current.version:
            # A version no audit entry vouches for is not installed: the last good one stays.
            problem = policy_anchor.problem(session, current)
            if problem is not None:
                self.anchoring.report("policy", problem)
                return
            self.policy.install(current.version, load_rules(current.rules))
            metrics.POLICY_VERSION.set(current.version)
            logger.info("policy version %d installed", current.version)
        self.anchoring.resolve("policy")

    def _load_models(self, session: Session) -> None:
        claimed: dict[str, list[ModelVersion]] = {}
        for row in registry_service.serving(session):
            claimed.setdefault(row.name, []).append(row)
        serving = self.host.serving()
        wanted: dict[str, ModelVersion] = {}
        kept: set[str] = set()
        for name in sorted(claimed.keys() | serving.keys()):
            # A stage no audit entry vouches for changes nothing: what serves goes on serving.
            problem = stage_anchor.problem(session, name, claimed.get(name, []))
            if problem is not None:
                self.anchoring.report(f"model:{name}", problem)
                kept.add(name)
                continue
            self.anchoring.resolve(f"model:{name}")
            if name in claimed:
                wanted[name] = claimed[name][0]
        for name, row in wanted.items():
            if serving.get(name) == row.version:
                continue
            try:
                # Pinned to the manifest digest recorded at registration: an artifact edited
                # on disk since then is refused even if its inner hashes were rewritten.
                self.host.load(
                    name, row.version, Path(row.artifact_dir), expected_sha256=row.artifact_sha256
                )
            except ManifestError as exc:
                # A serving artifact that no longer verifies is not served (fail closed).
                logger.error("model %s %s refused at load: %s", name, row.version, exc)
                if name in serving:
                    self.host.unload(name, serving[name])
        for name, version in serving.items():
            if name not in wanted and name not in kept:
                self.host.unload(name, version)

    def _check_thresholds(self, session: Session) -> None:
        # Read at each promotion, where an unanchored version is refused; checked here too so
        # that readiness tells of it before anyone promotes.
        latest = thresholds_store.latest_number(session)
        row = thresholds_store.get(session, latest) if latest is not None else None
        problem = thresholds_anchor.problem(session, row) if row is not None else None
        if problem is not None:
            self.anchoring.report("fairness_thresholds", problem)
        else:
            self.anchoring.resolve("fairness_thresholds")

    def refresh(self) -> None:
        """Check the change counters once and reload whatever moved."""
        with self._reload_lock, self.read_sessions() as session:
            counters = state.read_all(session)
            moved = {k for k, v in counters.items() if self._counters.get(k) != v}
            if state.POLICY in moved:
                self._load_policy(session)
            if state.IDENTITY in moved:
                self.auth_cache.clear()
                self.anchoring.forget_keys()
            if state.MODELS in moved:
                self._load_models(session)
                self._check_thresholds(session)
            if state.DATA_KEYS in moved:
                self.records.drop_inactive(session)  # erased or rotated by another process
            self._counters = counters

    def _poll(self) -> None:
        while True:
            self._wake.wait(self.settings.state_poll_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.refresh()
                self._checkpoint_if_due()
            except Exception as exc:
                logger.warning("state poll failed: %s", type(exc).__name__)
            # Erasure scrubs to retry, a KEK due for rotation: each guarded on its own.
            self.records.tick()

    # -- hot-path helpers ------------------------------------------------------------------

    def check_ready(self) -> dict[str, object]:
        """Readiness: database reachable, audit path working, policy and serving models loaded.

        Blocking (a query); /readyz runs it under a deadline (governance/api/health.py).
        """
        # What requests are refused for: the probe's verdict, a dead writer, a failed or late
        # audit write (which starts a probe through the journal).
        problem = self.audit.problem(probe=True)
        if problem is not None:
            raise ServiceUnavailable(problem)
        try:
            with self.read_sessions() as session:
                session.execute(text("SELECT 1"))
                serving = {r.name for r in registry_service.serving(session)}
        except Exception:
            raise ServiceUnavailable("the database is not reachable") from None
        missing = sorted(serving - set(self.host.serving()))
        if (unanchored := self.anchoring.problem()) is not None:
            raise ServiceUnavailable(unanchored)
        if self.policy.version is None:
            raise ServiceUnavailable("no policy is loaded")
        if missing:
            raise ServiceUnavailable(f"serving models not loaded: {', '.join(missing)}")
        return {
            "database": "ok",
            "audit": "ok",
            "policy_version": self.policy.version,
            "models": sorted(self.host.serving()),
            # Where each serving model runs: torch on its device, or ONNX Runtime's provider.
            "runtimes": self.host.runtimes(),
        }
