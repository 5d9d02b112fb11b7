"""``warden init``: keys, schema, the first policy version and the first admin key."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy import Engine, select

from governance.audit.signing import create_signing_key, load_signing_key, public_vkey
from governance.config import Settings
from governance.datasets.service import datasets
from governance.db import make_engine, make_sessionmaker
from governance.db.migrate import upgrade
from governance.errors import ConfigurationError
from governance.identity.duties import change_role, held_by_anyone
from governance.identity.enrolment import enrolments
from governance.identity.service import identity
from governance.kit.context import Context
from governance.policy.models import PolicyVersion
from governance.policy.rules import role_subject
from governance.policy.service import default_policy, policy
from governance.policy_files import check_policy_files
from governance.vault.providers import LocalKeyFileProvider


@dataclass(frozen=True)
class InitResult:
    admin_name: str
    admin_key_id: str
    admin_token: str
    database_url: str
    key_file: str
    signing_key_file: str
    vkey: str
    officer_name: str | None = None
    officer_code: str | None = None


def create_keys(settings: Settings) -> None:
    """Create the key file (KEKs and HMAC keys) and the audit signing key, both 0600."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.data_dir, 0o700)
    if settings.key_provider == "file" and not settings.resolved_key_file.exists():
        LocalKeyFileProvider.create(settings.resolved_key_file)
    if not settings.resolved_signing_key_file.exists():
        create_signing_key(settings.resolved_signing_key_file)


def seed(engine: Engine, settings: Settings, *, admin_name: str = "admin") -> tuple[str, str]:
    """Write policy version 1 and the first admin with a key.

    The local operator running ``warden init`` is the first admin: the key is theirs, and the
    grant is the audited bootstrap that no API caller can repeat.

    Returns:
        ``(key id, token)`` of the admin key (the token is shown once, by the caller).

    Raises:
        ConfigurationError: the database already holds a policy (already initialized).
    """
    sessions = make_sessionmaker(engine)
    system = Context()
    with sessions.begin() as session:
        if session.scalar(select(PolicyVersion.version).limit(1)) is not None:
            raise ConfigurationError(
                "this database is already initialized; `warden init` runs once per database"
            )
        policy.seed(session, system, settings.policies_dir)
        identity.create_principal(session, system, name=admin_name, kind="user")
        vocab, _ = default_policy(settings.policies_dir)
        policy.apply(
            session,
            system,
            add=[["g", admin_name, role_subject("admin")]],
            remove=[],
            reason=f"bootstrap: {admin_name} created by warden init",
            vocab=vocab,
            bootstrap=True,
        )
        key, token = identity.issue_key(session, system, principal=admin_name, personal=True)
        # The bundled Adult data is registered from the start (its hash pinned now).
        datasets.ensure_bundled(session, system)
        return key.key_id, token


def appoint_first_officer(engine: Engine, settings: Settings, name: str) -> str:
    """Create the first compliance officer and an enrolment code for them (the bootstrap path).

    Returns:
        The one-time enrolment code (shown once, by the caller).

    Raises:
        ConfigurationError: an officer exists already (the path closes once one does).
    """
    sessions = make_sessionmaker(engine)
    system = Context()
    vocab, _ = default_policy(settings.policies_dir)
    with sessions.begin() as session:
        if held_by_anyone(session, "compliance_officer"):
            raise ConfigurationError(
                "a compliance officer exists already: further officers are granted by an admin "
                "and approved by an officer"
            )
        identity.create_principal(session, system, name=name, kind="user")
        change_role(
            session,
            system,
            principal=name,
            role="compliance_officer",
            reason=f"{name} appointed first compliance officer by warden init",
            grant=True,
            vocab=vocab,
            local_operator=True,
        )
        _, code = enrolments.create(session, system, principal=name)
        return code


def initialize(
    settings: Settings, *, admin_name: str = "admin", officer_name: str | None = None
) -> InitResult:
    """Everything ``warden init`` does, in order; nothing is written if a policy file is broken."""
    check_policy_files(settings.policies_dir, refusing="initialize")
    create_keys(settings)
    engine = make_engine(settings.resolved_database_url)
    officer_code = None
    try:
        upgrade(engine)
        key_id, token = seed(engine, settings, admin_name=admin_name)
        if officer_name is not None:
            officer_code = appoint_first_officer(engine, settings, officer_name)
    finally:
        engine.dispose()
    return InitResult(
        admin_name=admin_name,
        admin_key_id=key_id,
        admin_token=token,
        database_url=engine.url.render_as_string(hide_password=True),
        key_file=str(settings.resolved_key_file),
        signing_key_file=str(settings.resolved_signing_key_file),
        vkey=public_vkey(settings.log_origin, load_signing_key(settings.resolved_signing_key_file)),
        officer_name=officer_name,
        officer_code=officer_code,
    )
