"""The remote CLI's client: a stored sign-in, and API calls made with it as that person.

``warden login`` keeps the session (its cookie value and CSRF token, the server and the name)
in ``$XDG_CONFIG_HOME/warden/session.json``, 0600 in a 0700 folder. Every call sends the cookie;
every change also sends ``X-CSRF-Token``, as the server requires of a cookie-authenticated
change. A problem+json answer becomes one line on stderr and the CLI's exit code.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx

from governance.cli.common import ExitCode, fail
from governance.kit.http import client as http_client
from governance.private_files import open_private, private_dir

SESSION_COOKIE = "warden_session"
CSRF_HEADER = "X-CSRF-Token"
SERVER_ENV = "WARDEN_SERVER"
_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
# Methods the server treats as changes: they must carry the session's CSRF token.
_CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/warden``, or ``~/.config/warden`` when it is unset or not absolute."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "warden"


def session_file() -> Path:
    return config_dir() / "session.json"


def normal_server(url: str) -> str:
    """The server's base URL as stored and compared: scheme and host, no trailing slash.

    Plain http only to this machine: a password and a session cookie cross the wire.
    """
    url = url.strip().rstrip("/")
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        fail(f"--server must be an https:// URL, not {url!r}", ExitCode.USAGE)
    if parsed.scheme == "http" and not _loopback(parsed.hostname):
        fail(f"--server {url}: use https:// (plain http only for this machine)", ExitCode.USAGE)
    return url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class StoredSession:
    """What ``warden login`` keeps: enough to act as the person until the session ends."""

    server: str
    name: str
    cookie: str
    csrf_token: str

    def save(self) -> Path:
        path = session_file()
        private_dir(path.parent)
        # The folder may predate Warden (another tool's ~/.config): ours is ours alone.
        os.chmod(path.parent, 0o700)
        with open_private(path) as out:
            out.write(json.dumps(asdict(self), indent=2).encode("utf-8"))
        return path


def load_session() -> StoredSession | None:
    """The stored sign-in, or None if there is none (a damaged file is an error)."""
    path = session_file()
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return StoredSession(
            server=str(doc["server"]),
            name=str(doc["name"]),
            cookie=str(doc["cookie"]),
            csrf_token=str(doc["csrf_token"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        fail(f"{path} is not a Warden session file; remove it and run `warden login` again")


def forget_session() -> bool:
    """Remove the stored sign-in; True if there was one."""
    try:
        session_file().unlink()
    except FileNotFoundError:
        return False
    return True


def problem_line(response: httpx.Response) -> str:
    """A problem+json answer as one line: its detail (or title), else the status."""
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        text = doc.get("detail") or doc.get("title")
        if text:
            return str(text)
    return f"the server answered {response.status_code} {response.reason_phrase}"


def exit_code_for(status: int) -> ExitCode:
    """403 and 409 are refusals by a rule (permission, four-eyes, a gate): exit 3."""
    return ExitCode.REFUSED if status in (403, 409) else ExitCode.ERROR


class Remote:
    """API calls as the signed-in person."""

    def __init__(self, stored: StoredSession) -> None:
        self.stored = stored
        self._http = http_client(
            base_url=stored.server,
            timeout=_TIMEOUT,
            # Sent as a header, not a cookie jar's: the cookie is Secure except on loopback.
            headers={"Cookie": f"{SESSION_COOKIE}={stored.cookie}"},
        )

    @property
    def name(self) -> str:
        return self.stored.name

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer to one call; a failure ends the command with one line and its code."""
        response = self.raw(method, path, **kwargs)
        if response.is_success:
            return response
        self.refuse(response)

    def raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer as it came; only an unreachable server ends the command here."""
        headers = dict(kwargs.pop("headers", {}) or {})
        if method.upper() in _CHANGES:
            headers[CSRF_HEADER] = self.stored.csrf_token
        try:
            return self._http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            fail(f"cannot reach {self.stored.server}: {type(exc).__name__}: {exc}")

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.call(method, path, **kwargs).json()

    def refuse(self, response: httpx.Response) -> NoReturn:
        line = problem_line(response)
        if response.status_code == 401:
            fail(
                f"{line}; sign in again: warden login --server {self.stored.server}",
                ExitCode.ERROR,
            )
        fail(line, exit_code_for(response.status_code))


@contextmanager
def open_remote(stored: StoredSession) -> Iterator[Remote]:
    remote = Remote(stored)
    try:
        yield remote
    finally:
        remote.close()
