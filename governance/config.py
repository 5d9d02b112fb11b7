"""Settings, read from the environment with the ``WARDEN_`` prefix (pydantic-settings).

Unsafe configurations are refused at start with a clear message, never at request time.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from governance.errors import ConfigurationError
from governance.kit.cosigner_key import CosignerKeyError, parse_vkey

REPO_ROOT = Path(__file__).resolve().parent.parent


def shipped_dir(name: str) -> Path:
    """A folder Warden ships beside its code: ``migrations`` or ``policies``.

    A wheel carries them as package data (``governance/_shipped/``, copied at build time by
    governance/_build_py.py); a checkout reads its top-level folders, their editable source.
    """
    packaged = files("governance").joinpath("_shipped", name)
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return REPO_ROOT / name


def _tls_or_loopback(url: str) -> bool:
    """An https URL, or http to a loopback host (a provider on the same machine, tests)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


class WitnessSetting(BaseModel):
    """A witness the log asks to cosign its checkpoints (docs/witness.md)."""

    name: str = Field(min_length=1, max_length=100)
    # Its cosigner verifier key, ``<name>+<key ID>+<base64(0x04 || key)>``.
    vkey: str
    # Its submission prefix: ``<url>/add-checkpoint`` is called.
    url: str = Field(pattern=r"^https?://")

    @field_validator("vkey")
    @classmethod
    def _cosigner_key(cls, value: str) -> str:
        try:
            parse_vkey(value)
        except CosignerKeyError as exc:
            raise ValueError(str(exc)) from None
        return value


class Settings(BaseSettings):
    """Everything Warden reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="WARDEN_", extra="ignore")

    environment: Literal["local", "test", "production"] = "local"
    data_dir: Path = Path("var")
    database_url: str = ""
    key_provider: Literal["file", "env"] = "file"
    key_file: Path | None = None
    signing_key_file: Path | None = None
    # An organisation's own copy of policies/ (WARDEN_POLICIES_DIR), or the shipped defaults.
    policies_dir: Path = shipped_dir("policies")
    # The checkout's audit_reports/; an installed wheel writes them where it is run, as var/.
    reports_dir: Path = (
        REPO_ROOT / "audit_reports"
        if (REPO_ROOT / "pyproject.toml").is_file()
        else Path("audit_reports")
    )
    models_dir: Path | None = None
    device: str = "auto"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_origin: str = "warden.local/audit"
    # Proxies (addresses or CIDR networks, comma-separated) whose forwarding header names the
    # client; from anyone else the header is ignored, so a client cannot choose the address its
    # audit entries record and its rate limits count (governance/kit/forwarded.py).
    trusted_proxies: Annotated[list[str], NoDecode] = []
    # The header those proxies write: "x-forwarded-for" or RFC 7239 "forwarded" (only that one
    # is read, so a header a client sent through the proxy untouched is never believed).
    forwarded_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for"

    max_body_bytes: int = Field(default=1_048_576, gt=0)
    # What one connection may hold in `warden serve` (governance/api/server_limits.py): a head
    # over this is a 431, a head or body slower than these is a 408, connections beyond the
    # cap a 503, so slow or oversized clients cannot pin the server's memory or sockets.
    max_header_bytes: int = Field(default=65_536, ge=1024)
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    max_connections: int = Field(default=1000, gt=0)
    max_batch_records: int = Field(default=1024, gt=0)
    batch_max_rows: int = Field(default=256, gt=0)
    batch_max_wait_ms: float = Field(default=0.0, ge=0)
    batch_max_queue_rows: int = Field(default=65_536, gt=0)
    # Where forward passes run: "auto" is the event loop on the CPU (moving to a thread for a
    # model whose forward passes take over 5 ms) and a thread on a GPU; "thread" keeps the loop
    # free during a long forward pass; "loop" stays on the loop whatever it costs.
    batch_execution: Literal["auto", "loop", "thread"] = "auto"
    torch_threads: int = Field(default=1, gt=0)
    # ONNX Runtime's intra-op threads per imported model, for the same reason as torch_threads.
    onnx_threads: int = Field(default=1, ge=1, le=256)
    # The largest ONNX graph an import accepts (POST /v1/models/import, `warden models import`):
    # the upload is streamed to disk and refused once it passes this, never held in memory.
    model_import_max_bytes: int = Field(default=200 * 1024 * 1024, gt=0)
    # How long a forming group commit waits for more appends once one has arrived. 0: it
    # takes what has arrived and commits; under load the next batch gathers during the commit,
    # as the micro-batcher's do during a forward pass (see governance/audit/writer.next_wait).
    audit_batch_wait_ms: float = Field(default=0.0, ge=0)
    # A forming group commit closes early once no append has arrived for this long.
    audit_batch_idle_ms: float = Field(default=0.3, ge=0)
    audit_batch_max: int = Field(default=512, gt=0)
    # Where the group-commit writer of audit entries and records runs: a process of its own
    # (the server's event loop then shares its GIL with nothing but inference), or a thread.
    audit_writer: Literal["process", "thread"] = "process"
    # A request whose audit entry is not durable within this long is refused (503), and the
    # journal then refuses at once until a trial write succeeds: a frozen database costs the
    # first requests this deadline, never a hang (governance/audit/journal/guard.py).
    audit_write_deadline_ms: float = Field(default=2000.0, gt=0)
    # PostgreSQL: libpq's connect timeout, so an unreachable server is an error, not a hang.
    db_connect_timeout_seconds: int = Field(default=2, ge=1)
    # Server-side limit on one statement of the service's requests (0: none); jobs that run
    # longer set their own with SET LOCAL statement_timeout.
    db_statement_timeout_ms: int = Field(default=5000, ge=0)
    # TCP keepalives: a peer that vanished (host down, cable cut) is found in
    # idle + interval * count seconds instead of the kernel's two hours.
    db_keepalives_idle_seconds: int = Field(default=10, ge=1)
    db_keepalives_interval_seconds: int = Field(default=5, ge=1)
    db_keepalives_count: int = Field(default=3, ge=1)
    # The readiness probe's deadline for `SELECT 1`, and how often the server probes.
    db_probe_deadline_ms: float = Field(default=1000.0, gt=0)
    db_probe_interval_seconds: float = Field(default=0.5, gt=0)
    checkpoint_every_entries: int = Field(default=1000, gt=0)
    checkpoint_every_seconds: float = Field(default=10.0, gt=0)
    state_poll_seconds: float = Field(default=0.25, gt=0)
    # On PostgreSQL, LISTEN for change notifications so that other processes follow a change at
    # once; the poll above remains the bound. Turn off behind a transaction-pooling proxy
    # (PgBouncer in transaction mode), which does not pass notifications.
    state_notify: bool = True
    # Heavy jobs (bias audits, mitigation, training, reports) computing at once per process, and
    # how many more may wait their turn before a 503: predictions never queue behind them.
    heavy_jobs_concurrency: int = Field(default=1, gt=0)
    heavy_jobs_queue: int = Field(default=16, ge=0)
    decision_cache_size: int = Field(default=100_000, gt=0)
    auth_cache_seconds: float = Field(default=1.0, ge=0)
    # A signed-in person's session ends after this long without a request, and this long after
    # sign-in whatever happens (governance/identity/sign_in.py).
    session_idle_minutes: float = Field(default=15.0, gt=0, le=24 * 60)
    session_max_hours: float = Field(default=8.0, gt=0, le=24 * 30)
    # OpenID Connect single sign-on (docs/sso.md): off while the issuer is unset. The redirect
    # URL defaults to this server's /v1/session/oidc/callback as the request names the host.
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: SecretStr = SecretStr("")
    oidc_redirect_url: str = ""
    # Records one data key may seal; at most 2**31, half NIST's limit for AES-GCM with random
    # nonces (governance/vault/record_format.py), and counted in the database across processes.
    dek_max_uses: int = Field(default=1_000_000, gt=0, le=2**31)
    # The KEK is rotated and the old one retired this often (governance/vault/kek_schedule.py):
    # after that, no copy of a key destroyed by an erasure (a backup, an old row) opens.
    kek_rotation_days: float = Field(default=30.0, gt=0, le=3650)
    require_second_approval: bool = False
    # A pending policy proposal (a role grant awaiting an officer included) expires after this
    # long: an approval months later would judge a situation nobody remembers.
    proposal_lifetime_hours: float = Field(default=72.0, gt=0, le=24 * 90)
    # Witnesses asked to cosign new checkpoints (a JSON list of {"name", "vkey", "url"}), and
    # how many distinct ones `warden audit verify` requires on the latest checkpoint.
    witnesses: list[WitnessSetting] = []
    witness_quorum: int = Field(default=0, ge=0)
    # Each call to a witness gives up after this long; cosigning never runs on a request path.
    witness_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Log lines as JSON objects for a log shipper, or text for a terminal; "auto" is JSON in
    # production only. The access log writes a line per request (route template, principal,
    # decision, latency), never a payload.
    log_format: Literal["auto", "json", "text"] = "auto"
    access_log: bool = True
    # OpenTelemetry traces, exported over OTLP/HTTP as the OTEL_EXPORTER_OTLP_* variables say
    # (needs the `tracing` extra).
    tracing: bool = False

    @property
    def log_json(self) -> bool:
        if self.log_format == "auto":
            return self.environment == "production"
        return self.log_format == "json"

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_list(cls, value: object) -> object:
        # From the environment: "10.0.0.1, 10.1.0.0/16"; each must be an address or network.
        from governance.kit.forwarded import parse_networks

        entries = [e for e in value.split(",") if e.strip()] if isinstance(value, str) else value
        if isinstance(entries, list | tuple):
            parse_networks(str(e) for e in entries)
            return [str(e).strip() for e in entries]
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            # Never echo the URL: it may hold a password.
            raise ValueError("WARDEN_DATABASE_URL must be a sqlite:// or postgresql:// URL")
        return value

    @model_validator(mode="after")
    def _reachable_quorum(self) -> Settings:
        if self.witness_quorum > len(self.witnesses):
            raise ValueError("WARDEN_WITNESS_QUORUM exceeds the number of WARDEN_WITNESSES")
        if len({w.name for w in self.witnesses}) != len(self.witnesses):
            raise ValueError("WARDEN_WITNESSES names must be distinct")
        return self

    @model_validator(mode="after")
    def _oidc_complete(self) -> Settings:
        if not self.oidc_issuer:
            return self
        if not self.oidc_client_id:
            raise ValueError("WARDEN_OIDC_ISSUER is set: WARDEN_OIDC_CLIENT_ID must be set too")
        for name, url in (("ISSUER", self.oidc_issuer), ("REDIRECT_URL", self.oidc_redirect_url)):
            if url and not _tls_or_loopback(url):
                raise ValueError(f"WARDEN_OIDC_{name} must be an https:// URL (http on loopback)")
        return self

    @model_validator(mode="after")
    def _separate_secrets(self) -> Settings:
        # One file holding both the KEK and the log's signing key would let a leak of either
        # forge the other's evidence; refuse the mix-up at start.
        if self.resolved_key_file.resolve() == self.resolved_signing_key_file.resolve():
            raise ValueError("the key file and the audit signing key must be different files")
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'warden.db').as_posix()}"

    @property
    def resolved_key_file(self) -> Path:
        return self.key_file or self.data_dir / "keys.json"

    @property
    def resolved_signing_key_file(self) -> Path:
        return self.signing_key_file or self.data_dir / "audit-signing.key"

    @property
    def kek_rotation_period(self) -> timedelta:
        return timedelta(days=self.kek_rotation_days)

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir or self.data_dir / "models"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


def load_settings() -> Settings:
    """Settings from the environment; an invalid one is a ConfigurationError whose message
    names the variable and the problem but never echoes the value (it may be a secret).

    Raises:
        ConfigurationError: listing every invalid setting.
    """
    try:
        return Settings()
    except ValidationError as exc:
        problems = [
            f"WARDEN_{'_'.join(str(p) for p in err['loc']).upper() or '?'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        ]
        raise ConfigurationError("invalid settings: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own ``Settings`` instead)."""
    return load_settings()
