"""Session lifetimes with a clock the test moves: idle timeout, absolute lifetime, TOTP replay.

The sign-in service takes its time from the caller (the server passes its clock), so these run
against the real database without waiting.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest
from sqlalchemy.orm import Session, sessionmaker

from governance.identity import sign_in
from governance.identity.errors import SignInFailed
from governance.identity.models import Credential, Principal
from governance.identity.service import identity
from governance.kit.context import cli_context
from governance.vault.providers import ServiceKeyProvider, load_provider
from tests.clock import SteppedClock
from tests.shared_db import SharedDatabase

PASSWORD = "a long enough passphrase"
LIFETIMES = sign_in.Lifetimes(idle=timedelta(minutes=15), absolute=timedelta(hours=8))


@pytest.fixture
def keys(shared_database: SharedDatabase) -> ServiceKeyProvider:
    settings = shared_database.settings
    return load_provider(settings.key_provider, path=settings.resolved_key_file)


def _person(session: Session, name: str) -> Principal:
    return identity.create_principal(session, cli_context(), name=name, kind="user")


def test_idle_and_absolute_expiry(
    db_sessions: sessionmaker[Session], keys: ServiceKeyProvider
) -> None:
    clock = SteppedClock()
    ctx = cli_context()
    with db_sessions.begin() as session:
        person = _person(session, "expiry-person")
        sign_in.set_password(
            session, ctx, person, PASSWORD, keys=keys, second_factor_needed=False, now=clock.now()
        )

        def open_one() -> str:
            return sign_in.sign_in(
                session,
                ctx,
                name=person.name,
                password=PASSWORD,
                code=None,
                roles=(),
                keys=keys,
                now=clock.now(),
                lifetimes=LIFETIMES,
            ).session_id

        def alive(session_id: str) -> bool:
            found = sign_in.resolve(session, session_id, now=clock.now(), lifetimes=LIFETIMES)
            return found is not None

        idle = open_one()
        clock.advance(14 * 60 + 59)
        assert alive(idle)  # used just before the idle timeout: its idle clock starts again
        clock.advance(14 * 60 + 59)
        assert alive(idle)
        clock.advance(15 * 60)
        assert not alive(idle)
        assert not alive(idle)  # an ended session does not come back

        busy = open_one()
        for _ in range(8 * 6 - 1):  # a request every ten minutes, for just under eight hours
            clock.advance(10 * 60)
            assert alive(busy)
        clock.advance(10 * 60)
        assert not alive(busy)  # the absolute lifetime holds however busy the session is
        assert sign_in.live(session, person.id, now=clock.now(), lifetimes=LIFETIMES) == []


def test_a_totp_code_is_accepted_once_within_plus_minus_one_step(
    db_sessions: sessionmaker[Session], keys: ServiceKeyProvider
) -> None:
    clock = SteppedClock()
    ctx = cli_context()
    with db_sessions.begin() as session:
        person = _person(session, "totp-person")
        enrolled = sign_in.set_password(
            session, ctx, person, PASSWORD, keys=keys, second_factor_needed=True, now=clock.now()
        )
        assert enrolled is not None
        totp = pyotp.TOTP(parse_qs(urlparse(enrolled.uri).query)["secret"][0])
        stored = session.get(Credential, person.id)
        assert stored is not None and stored.totp_blob is not None
        assert totp.secret.encode() not in stored.totp_blob  # sealed, not stored in clear
        assert stored.password_hash.startswith("$argon2id$")

        def attempt(code: str) -> None:
            sign_in.sign_in(
                session,
                ctx,
                name=person.name,
                password=PASSWORD,
                code=code,
                roles=(),
                keys=keys,
                now=clock.now(),
                lifetimes=LIFETIMES,
            )

        previous_step = totp.at(clock.now() - timedelta(seconds=30))
        attempt(previous_step)  # one step late: clock drift is allowed
        with pytest.raises(SignInFailed):
            attempt(previous_step)  # the same code twice: a replay
        current = totp.at(clock.now())
        attempt(current)
        with pytest.raises(SignInFailed):
            attempt(current)
        # An older step than one already used is refused, even if within the window.
        with pytest.raises(SignInFailed):
            attempt(totp.at(clock.now() - timedelta(seconds=30)))
        with pytest.raises(SignInFailed):
            attempt(totp.at(clock.now() + timedelta(seconds=90)))  # too far ahead
