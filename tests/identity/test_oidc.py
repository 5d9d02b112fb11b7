"""Single sign-on with OpenID Connect (issue 29, item 1) against a provider the test runs.

The provider is built from Authlib's server components (the authorization code grant with
PKCE required, the OpenID Connect code extension with a nonce required) and serves
discovery, authorize (approving the test's chosen user at once), token and JWKS over real
HTTP on localhost. Warden runs as ``warden serve`` with the provider as its issuer. A test can
make the provider misbehave: sign the id_token with another key, or name another audience.
"""

from __future__ import annotations

import html
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from joserfc.jwk import KeySet, RSAKey
from pydantic import ValidationError
from sqlalchemy import func, select, update
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from governance.audit.models import AuditEntry
from governance.config import Settings
from governance.db import make_engine
from governance.identity.models import OidcFlow, Principal, SsoLink
from governance.kit.http import client as http_client
from governance.limits.service import SSO_STARTS
from tests.conftest import (
    BACKENDS,
    LiveServer,
    WardenFactory,
    auth,
    fresh_database,
    make_settings,
    seed_admin,
)
from tests.servers import SharedServer

CLIENT_ID = "warden-test"
CLIENT_SECRET = "client-secret-" + uuid.uuid4().hex


# The provider ---------------------------------------------------------------------------


@dataclass
class _Client:
    redirect_uris: list[str]

    def get_client_id(self) -> str:
        return CLIENT_ID

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in scope.split() if s in ("openid", "email"))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return client_secret == CLIENT_SECRET

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "client_secret_basic" if endpoint == "token" else True

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class _Code:
    code: str
    redirect_uri: str
    scope: str
    user: dict[str, Any]
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None

    def is_expired(self) -> bool:
        return time.time() > self.auth_time + 300


class _WerkzeugRequest(OAuth2Request):
    """A Werkzeug request as Authlib's server reads one (its Flask integration does the same)."""

    def __init__(self, request: Request) -> None:
        super().__init__(request.method, request.url, headers=request.headers)
        self._request = request
        self.payload = BasicOAuth2Payload({**request.args.to_dict(), **request.form.to_dict()})

    @property
    def args(self) -> Any:
        return self._request.args

    @property
    def form(self) -> Any:
        return self._request.form


class Provider:
    """An OpenID provider on localhost whose user and misbehaviour the test chooses."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "idp-1", "use": "sig"})
        # Another key under the same key id: what a forger without the provider's key has.
        self.forger = RSAKey.generate_key(2048, parameters={"kid": "idp-1", "use": "sig"})
        self.client = _Client(redirect_uris=[])
        self.codes: dict[str, _Code] = {}
        self.user: dict[str, Any] = {}
        self.forge = False
        self.audience: str | None = None
        self.issuer = ""
        self.server = self._authorization_server()

    def _authorization_server(self) -> AuthorizationServer:
        provider = self

        class Server(AuthorizationServer):
            def query_client(self, client_id: str) -> _Client | None:
                return provider.client if client_id == CLIENT_ID else None

            def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
                pass

            def create_oauth2_request(self, request: Request) -> OAuth2Request:
                return _WerkzeugRequest(request)

            def handle_response(
                self, status: int, body: Any, headers: list[tuple[str, str]]
            ) -> Response:
                text = json.dumps(body) if isinstance(body, dict) else body
                return Response(text, status=status, headers=headers)

            def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
                pass

        class CodeGrant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]  # noqa: RUF012

            def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
                data = request.payload.data
                provider.codes[code] = _Code(
                    code=code,
                    redirect_uri=data["redirect_uri"],
                    scope=request.scope,
                    user=request.user,
                    nonce=data.get("nonce"),
                    code_challenge=data.get("code_challenge"),
                    code_challenge_method=data.get("code_challenge_method"),
                )

            def query_authorization_code(self, code: str, client: _Client) -> _Code | None:
                return provider.codes.get(code)

            def delete_authorization_code(self, authorization_code: _Code) -> None:
                provider.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: _Code) -> dict[str, Any]:
                return authorization_code.user

        class OpenID(OpenIDCode):
            def resolve_client_private_key(self, client: _Client) -> RSAKey:
                return provider.forger if provider.forge else provider.key

            def get_client_claims(self, client: _Client) -> dict[str, Any]:
                return {"iss": provider.issuer, "aud": [provider.audience or CLIENT_ID]}

            def get_encode_header(self, client: _Client) -> dict[str, str]:
                return {"alg": "RS256", "kid": "idp-1"}

            def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
                return any(c.nonce == nonce for c in provider.codes.values())

            def generate_user_info(self, user: dict[str, Any], scope: str) -> UserInfo:
                return UserInfo(**user)

        server = Server()
        server.register_token_generator(
            "default", BearerTokenGenerator(lambda *a, **k: uuid.uuid4().hex)
        )
        server.register_grant(CodeGrant, [CodeChallenge(required=True), OpenID(require_nonce=True)])
        return server

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        path = request.path
        if path == "/.well-known/openid-configuration":
            response = Response(
                json.dumps(
                    {
                        "issuer": self.issuer,
                        "authorization_endpoint": f"{self.issuer}/authorize",
                        "token_endpoint": f"{self.issuer}/token",
                        "jwks_uri": f"{self.issuer}/jwks",
                        "response_types_supported": ["code"],
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["RS256"],
                        "code_challenge_methods_supported": ["S256"],
                    }
                ),
                content_type="application/json",
            )
        elif path == "/jwks":
            keys = KeySet([self.key]).as_dict(private=False)
            response = Response(json.dumps(keys), content_type="application/json")
        elif path == "/authorize":
            # The user signed in at the provider and approved: no page in between.
            grant = self.server.get_consent_grant(request, end_user=dict(self.user))
            response = self.server.create_authorization_response(
                request, grant_user=dict(self.user), grant=grant
            )
        elif path == "/token":
            response = self.server.create_token_response(request)
        else:
            response = Response("not found", status=404)
        return response(environ, start_response)


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    made = Provider()
    server = make_server("127.0.0.1", 0, made.wsgi, threaded=True)
    made.issuer = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield made
    finally:
        server.shutdown()
        thread.join(timeout=5)


# Warden, with the provider as its issuer -------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def sso_server(
    request: pytest.FixtureRequest,
    provider: Provider,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
    pg_template: str | None,
) -> Iterator[SharedServer]:
    folder = tmp_path_factory.mktemp("sso-server")
    with fresh_database(request.param, folder, sqlite_template, pg_template) as url:
        settings = make_settings(url, folder)
        admin = seed_admin(settings)
        server = LiveServer(settings, folder / "server.log")
        server.env.update(
            WARDEN_OIDC_ISSUER=provider.issuer,
            WARDEN_OIDC_CLIENT_ID=CLIENT_ID,
            WARDEN_OIDC_CLIENT_SECRET=CLIENT_SECRET,
        )
        provider.client.redirect_uris = [f"{server.url}/v1/session/oidc/callback"]
        server.start()
        try:
            with http_client(base_url=server.url, timeout=30) as http:
                yield SharedServer(
                    server, settings, admin, http, WardenFactory(http, admin), folder
                )
        finally:
            server.stop()


def _browser(shared: SharedServer, address: str) -> httpx.Client:
    """A browser of its own (its own cookies) at its own address: the first refusal from an
    address is audited alone, later ones within the window are summarised."""
    transport = httpx.HTTPTransport(local_address=address)
    return http_client(base_url=shared.url, timeout=30, transport=transport)


def _person(shared: SharedServer, *roles: str, enrol: bool = True) -> tuple[str, str | None]:
    """A person (and their own key, once they redeemed their enrolment)."""
    name = shared.unique("sso")
    if enrol:
        return name, shared.warden.principal(name, *roles)
    r = shared.http.post("/v1/principals", json={"name": name}, headers=auth(shared.admin))
    assert r.status_code == 201, r.text
    return name, None


def _link(shared: SharedServer, name: str, **body: str) -> httpx.Response:
    return shared.http.put(f"/v1/principals/{name}/sso", json=body, headers=auth(shared.admin))


def _at_provider(browser: httpx.Client, start: str = "/v1/session/oidc/start") -> str:
    """Start at Warden, pass the provider; the callback URL the provider sends back."""
    r = browser.get(start)
    assert r.status_code == 302, r.text
    authorize = r.headers["location"]
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/v1/session/oidc" in cookie
    back = httpx.get(authorize, timeout=30)
    assert back.status_code == 302, back.text
    callback = str(back.headers["location"])
    assert "code=" in callback, callback
    return callback


def _user(email: str | None = None, *, verified: bool = True) -> dict[str, Any]:
    user: dict[str, Any] = {"sub": uuid.uuid4().hex}
    if email is not None:
        user.update(email=email, email_verified=verified)
    return user


def _audit_texts(shared: SharedServer) -> list[dict[str, Any]]:
    engine = make_engine(shared.settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            return [json.loads(t) for t in conn.execute(select(AuditEntry.canonical)).scalars()]
    finally:
        engine.dispose()


def _refusal_audited(shared: SharedServer, needle: str) -> None:
    deadline = time.monotonic() + 5
    while True:
        found = [
            e
            for e in _audit_texts(shared)
            if e["event_type"] == "api.call"
            and "single sign-on refused" in json.dumps(e)
            and needle in json.dumps(e)
        ]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert found, f"the refusal ({needle}) is audited"


def _refused(r: httpx.Response, status: int, slug: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"].endswith(slug)
    assert "warden_session" not in r.headers.get("set-cookie", "")


# The tests ------------------------------------------------------------------------------


def test_a_linked_person_signs_in_and_their_roles_decide(
    sso_server: SharedServer, provider: Provider
) -> None:
    name, _ = _person(sso_server, "compliance_officer")
    email = f"{name}@example.org"
    r = _link(sso_server, name, email=email.upper())
    assert r.status_code == 200, r.text
    assert r.json()["email"] == email
    provider.user = _user(email)
    with _browser(sso_server, "127.0.0.11") as browser:
        form = browser.get("/console/sign-in")
        assert 'href="/v1/session/oidc/start?next=%2Fconsole%2F"' in form.text
        callback = _at_provider(browser)
        flow = browser.cookies["warden_oidc"]
        r = browser.get(callback)
        assert r.status_code == 200, r.text
        assert 'http-equiv="refresh"' in r.text and "/console/" in r.text
        cookies = r.headers.get_list("set-cookie")
        session_cookie = next(c for c in cookies if c.startswith("warden_session=wss_"))
        lowered = session_cookie.lower()
        assert "httponly" in lowered and "samesite=strict" in lowered and "path=/" in lowered
        # The provider authenticated; Warden's roles decide: an officer reads the policy but
        # may not list keys.
        assert browser.get("/v1/policy").status_code == 200
        assert browser.get("/v1/keys").status_code == 403
        assert [s["current"] for s in browser.get("/v1/sessions").json()] == [True]
        # The console opens on the same session, with the officer's pages in its navigation.
        home = browser.get("/console/")
        assert home.status_code == 200 and f"Welcome, {name}" in home.text
        assert "/console/officer/policy" in home.text

    # The first sign-in bound the subject: a later one matches it, whatever the email says.
    provider.user = {**provider.user, "email": "changed@example.org"}
    with _browser(sso_server, "127.0.0.11") as browser:
        assert browser.get(_at_provider(browser)).status_code == 200
        assert browser.get("/v1/policy").status_code == 200

    entries = [e for e in _audit_texts(sso_server) if name in json.dumps(e)]
    opened = [
        e for e in entries if e["event_type"] == "principal.session" and e["action"] == "create"
    ]
    assert len(opened) == 2
    assert {e["actor"]["auth_method"] for e in opened} == {"oidc"}
    assert opened[0]["details"]["subject"] == provider.user["sub"]
    assert any(e["event_type"] == "principal.sso" and e["action"] == "bind" for e in entries)
    # Neither the client secret nor a code, state or flow cookie is logged or audited.
    log = (sso_server.folder / "server.log").read_text()
    audit = json.dumps(_audit_texts(sso_server))
    query = parse_qs(urlsplit(callback).query)
    for secret in (CLIENT_SECRET, query["code"][0], query["state"][0], flow):
        assert secret not in log and secret not in audit


def test_sso_returns_the_person_to_the_console_page_they_asked_for(
    sso_server: SharedServer, provider: Provider
) -> None:
    name, _ = _person(sso_server, "auditor")
    provider.user = _user()
    assert _link(sso_server, name, subject=provider.user["sub"]).status_code == 200
    deep = "/console/audit?actor=someone&event_type=policy.change"
    with _browser(sso_server, "127.0.0.12") as browser:
        # Signed out, the page sends the person to sign in, and the sign-in page's SSO link
        # carries the page on.
        asked = browser.get(deep, follow_redirects=True)
        start = re.search(r'href="(/v1/session/oidc/start\?[^"]+)"', asked.text)
        assert start is not None
        landing = browser.get(_at_provider(browser, html.unescape(start.group(1))))
        assert landing.status_code == 200, landing.text
        assert f'content="0;url={html.escape(deep)}"' in landing.text
        assert "warden_oidc_next" not in browser.cookies
        assert browser.get(deep).status_code == 200
    # Anywhere but a console page, the person lands on the console's home.
    for elsewhere in ("//evil.example/console/", "https://evil.example/", "/v1/keys"):
        with _browser(sso_server, "127.0.0.12") as browser:
            start = f"/v1/session/oidc/start?{urlencode({'next': elsewhere})}"
            landing = browser.get(_at_provider(browser, start))
            assert landing.status_code == 200, landing.text
            assert 'content="0;url=/console/"' in landing.text


def test_a_forged_id_token_is_refused(sso_server: SharedServer, provider: Provider) -> None:
    name, _ = _person(sso_server)
    provider.user = _user()
    assert _link(sso_server, name, subject=provider.user["sub"]).status_code == 200
    provider.forge = True
    try:
        with _browser(sso_server, "127.0.0.12") as browser:
            r = browser.get(_at_provider(browser))
            _refused(r, 401, "sso-refused")
            assert browser.get("/v1/sessions").status_code == 401
    finally:
        provider.forge = False
    _refusal_audited(sso_server, "signature")


def test_a_token_for_another_audience_is_refused(
    sso_server: SharedServer, provider: Provider
) -> None:
    name, _ = _person(sso_server)
    provider.user = _user()
    assert _link(sso_server, name, subject=provider.user["sub"]).status_code == 200
    provider.audience = "another-client"
    try:
        with _browser(sso_server, "127.0.0.13") as browser:
            _refused(browser.get(_at_provider(browser)), 401, "sso-refused")
    finally:
        provider.audience = None
    _refusal_audited(sso_server, "aud")


def test_a_callback_is_used_once_and_only_by_its_browser(
    sso_server: SharedServer, provider: Provider
) -> None:
    name, _ = _person(sso_server)
    provider.user = _user()
    assert _link(sso_server, name, subject=provider.user["sub"]).status_code == 200
    with _browser(sso_server, "127.0.0.14") as browser:
        callback = _at_provider(browser)
        flow = browser.cookies["warden_oidc"]
        assert browser.get(callback).status_code == 200
        assert "warden_oidc" not in browser.cookies, "the flow's cookie is cleared once used"
        # The same state, code and nonce again, even with the browser's flow cookie put back.
        browser.cookies.set("warden_oidc", flow, path="/v1/session/oidc")
        _refused(browser.get(callback), 401, "sso-refused")
    _refusal_audited(sso_server, "already used")

    # A callback begun in one browser and opened in another (login CSRF) is refused.
    with _browser(sso_server, "127.0.0.15") as victim, _browser(sso_server, "127.0.0.15") as other:
        callback = _at_provider(victim)
        _refused(other.get(callback), 401, "sso-refused")
        assert victim.get(callback).status_code == 200


def test_a_provider_error_or_a_missing_code_is_refused(sso_server: SharedServer) -> None:
    with _browser(sso_server, "127.0.0.18") as browser:
        callback = "/v1/session/oidc/callback"
        r = browser.get(callback, params={"state": "s", "error": "access_denied<script>"})
        _refused(r, 401, "sso-refused")
        assert "'access_deniedscript'" in r.json()["detail"] and "<script>" not in r.text
        _refused(browser.get(callback, params={"state": "s"}), 401, "sso-refused")
        assert browser.get(callback).status_code == 422


def test_an_identity_nobody_linked_is_refused_not_created(
    sso_server: SharedServer, provider: Provider
) -> None:
    def principals() -> int:
        engine = make_engine(sso_server.settings.resolved_database_url)
        try:
            with engine.connect() as conn:
                return int(conn.execute(select(func.count()).select_from(Principal)).scalar_one())
        finally:
            engine.dispose()

    before = principals()
    provider.user = _user("stranger@example.org")
    with _browser(sso_server, "127.0.0.16") as browser:
        _refused(browser.get(_at_provider(browser)), 403, "sso-not-linked")
    assert principals() == before
    _refusal_audited(sso_server, "no Warden person is linked")

    # An email link needs the provider to say it verified the email.
    name, _ = _person(sso_server)
    assert _link(sso_server, name, email=f"{name}@example.org").status_code == 200
    provider.user = _user(f"{name}@example.org", verified=False)
    with _browser(sso_server, "127.0.0.17") as browser:
        _refused(browser.get(_at_provider(browser)), 403, "sso-not-linked")

    # A link for a person who never redeemed their enrolment opens nothing.
    waiting, _ = _person(sso_server, enrol=False)
    provider.user = _user()
    assert _link(sso_server, waiting, subject=provider.user["sub"]).status_code == 200
    with _browser(sso_server, "127.0.0.17") as browser:
        _refused(browser.get(_at_provider(browser)), 403, "sso-not-linked")


def test_a_link_edited_in_the_database_opens_nothing(
    sso_server: SharedServer, provider: Provider
) -> None:
    name, _ = _person(sso_server)
    assert _link(sso_server, name, subject=uuid.uuid4().hex).status_code == 200
    # A database administrator points the link at an identity of their own.
    provider.user = _user()
    engine = make_engine(sso_server.settings.resolved_database_url)
    try:
        with engine.begin() as conn:
            person = select(Principal.id).where(Principal.name == name).scalar_subquery()
            edit = update(SsoLink).where(SsoLink.principal_id == person)
            assert conn.execute(edit.values(subject=provider.user["sub"])).rowcount == 1
    finally:
        engine.dispose()
    with _browser(sso_server, "127.0.0.19") as browser:
        _refused(browser.get(_at_provider(browser)), 403, "sso-not-linked")
    log = (sso_server.folder / "server.log").read_text()
    assert "the sign-on link of principal" in log and "not anchored" in log


def test_an_address_past_failed_auth_cannot_start_or_finish(sso_server: SharedServer) -> None:
    limit = 100  # policies/limits.yaml: failed_auth, counted by wrong keys and sign-ins alike
    with _browser(sso_server, "127.0.0.20") as attacker:
        wrong = {"state": "not-a-flow", "code": "guess"}
        statuses = {
            attacker.get("/v1/session/oidc/callback", params=wrong).status_code
            for _ in range(limit)
        }
        assert statuses == {401}
        for path in ("/v1/session/oidc/callback", "/v1/session/oidc/start"):
            r = attacker.get(path, params=wrong)
            assert r.status_code == 429 and int(r.headers["retry-after"]) > 0


def test_an_address_cannot_fill_the_database_with_sign_ins_it_never_finishes(
    sso_server: SharedServer,
) -> None:
    """Each start stores a flow row: one address gets SSO_STARTS of them, then 429s."""

    def flows() -> int:
        engine = make_engine(sso_server.settings.resolved_database_url)
        try:
            with engine.connect() as conn:
                return int(conn.scalar(select(func.count()).select_from(OidcFlow)) or 0)
        finally:
            engine.dispose()

    before = flows()
    with _browser(sso_server, "127.0.0.21") as attacker:
        statuses = [
            attacker.get("/v1/session/oidc/start").status_code for _ in range(SSO_STARTS.requests)
        ]
        assert statuses == [302] * SSO_STARTS.requests
        r = attacker.get("/v1/session/oidc/start")
        _refused(r, 429, "rate-limited")
        assert int(r.headers["retry-after"]) > 0
    assert flows() - before == SSO_STARTS.requests
    # Another address still begins its own sign-in.
    with _browser(sso_server, "127.0.0.22") as other:
        assert other.get("/v1/session/oidc/start").status_code == 302


def test_only_admins_link_people_one_identity_each(sso_server: SharedServer) -> None:
    (first, first_key), (second, _) = _person(sso_server), _person(sso_server)
    assert first_key is not None
    subject = uuid.uuid4().hex
    assert _link(sso_server, first, subject=subject).status_code == 200
    r = _link(sso_server, second, subject=subject)
    assert r.status_code == 409 and r.json()["type"].endswith("sso-link-taken")
    assert _link(sso_server, second, subject=subject, email="a@b.c").status_code == 422
    service = sso_server.unique("svc")
    sso_server.warden.principal(service, kind="service")
    assert _link(sso_server, service, subject=uuid.uuid4().hex).status_code == 403
    # A person cannot link themselves: that is the admins' permission on principals.
    r = sso_server.http.put(
        f"/v1/principals/{first}/sso", json={"subject": "mine"}, headers=auth(first_key)
    )
    assert r.status_code == 403


def test_the_settings_refuse_an_incomplete_or_plain_http_provider(tmp_path: Path) -> None:
    base = {"data_dir": tmp_path, "environment": "test"}
    with pytest.raises(ValidationError, match="CLIENT_ID"):
        Settings(**base, oidc_issuer="https://idp.example.org")
    with pytest.raises(ValidationError, match="https"):
        Settings(**base, oidc_issuer="http://idp.example.org", oidc_client_id="w")
    assert Settings(**base, oidc_issuer="http://127.0.0.1:9", oidc_client_id="w").oidc_issuer
    assert Settings(**base).oidc_issuer == ""


def test_without_an_issuer_single_sign_on_is_off(app_client: Any, admin_token: str) -> None:
    for r in (
        app_client.get("/v1/session/oidc/start", follow_redirects=False),
        app_client.get("/v1/session/oidc/callback", params={"state": "s", "code": "c"}),
        app_client.put(
            "/v1/principals/anyone/sso", json={"subject": "s"}, headers=auth(admin_token)
        ),
    ):
        assert r.status_code == 404, r.text
        assert r.json()["type"].endswith("sso-disabled")
