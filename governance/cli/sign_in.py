"""``warden login``, ``logout`` and ``whoami``: a person's own session for the remote CLI."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import sys
import webbrowser

import httpx
import typer

from governance.cli.common import ExitCode, console, err_console, fail
from governance.cli.remote import (
    SERVER_ENV,
    SESSION_COOKIE,
    StoredSession,
    exit_code_for,
    forget_session,
    load_session,
    normal_server,
    open_remote,
    problem_line,
)
from governance.kit.http import client as http_client


def _server(ctx: typer.Context, option: str | None) -> str | None:
    root = ctx.find_root()
    found = option or root.params.get("server") or os.environ.get(SERVER_ENV) or None
    return normal_server(found) if found else None


def _session_cookie(response: httpx.Response) -> str | None:
    # Read from the header: a cookie jar would not keep a Secure cookie met over http.
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name.strip() == SESSION_COOKIE:
            return rest.split(";", 1)[0].strip() or None
    return None


def _secrets(password_stdin: bool) -> tuple[str, str]:
    if password_stdin:
        lines = sys.stdin.read().splitlines()
        password = lines[0] if lines else ""
        code = lines[1].strip() if len(lines) > 1 else ""
    else:
        password = typer.prompt("Password", hide_input=True)
        code = typer.prompt(
            "One-time code (officers, auditors, admins; else leave empty)",
            default="",
            show_default=False,
        ).strip()
    if not password:
        fail("no password given", ExitCode.USAGE)
    return password, code


def _browser_grant(url: str) -> dict[str, str]:
    """Send the person to the console to allow this CLI; the code they paste, and the verifier
    whose hash the page bound it to (so the code is worth nothing to anyone else)."""
    verifier = secrets.token_urlsafe(32)
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    page = f"{url}/console/cli-login?challenge={challenge}"
    console.print(f"Open this page, sign in if asked, and allow:\n  {page}", markup=False)
    # A machine without a browser: the person opens the printed link elsewhere.
    with contextlib.suppress(webbrowser.Error):
        webbrowser.open(page)
    # Not hidden: without the verifier the code is worth nothing to someone reading the screen.
    code = typer.prompt("Paste the code shown in your browser").strip()
    if not code:
        fail("no code given", ExitCode.USAGE)
    return {"code": code, "verifier": verifier}


def login(
    ctx: typer.Context,
    server: str = typer.Option(None, "--server", help="The Warden server's URL."),
    name: str = typer.Option(None, "--name", help="Your principal name (asked if not given)."),
    password_stdin: bool = typer.Option(
        False,
        "--password-stdin",
        help="Read the password, and the one-time code on a second line, from standard input.",
    ),
    browser: bool = typer.Option(
        False,
        "--browser",
        help="Sign in as whoever is signed in to the console (password or single sign-on): "
        "opens a page there that shows a one-time code to paste here.",
    ),
) -> None:
    """Sign in to a server with password and one-time code, or in the browser (--browser);
    keep the session for later commands."""
    url = _server(ctx, server)
    if url is None:
        fail("name the server: warden login --server URL", ExitCode.USAGE)
    if browser:
        if name or password_stdin:
            fail("--browser signs in as whoever is signed in to the console", ExitCode.USAGE)
        route, body = "/v1/session/cli", _browser_grant(url)
    else:
        person = name or typer.prompt("Name")
        password, code = _secrets(password_stdin)
        route, body = "/v1/session", {"name": person, "password": password}
        if code:
            body["totp"] = code
    try:
        with http_client(base_url=url, timeout=30) as http:
            response = http.post(route, json=body)
    except httpx.HTTPError as exc:
        fail(f"cannot reach {url}: {type(exc).__name__}: {exc}")
    if response.status_code != 201:
        fail(problem_line(response), exit_code_for(response.status_code))
    cookie = _session_cookie(response)
    if cookie is None:
        fail(f"{url} answered without a session cookie; is it a Warden server?")
    if browser:
        person = str(response.json()["principal"])
    previous = load_session()
    if previous is not None and previous.server == url:
        _end_quietly(previous)
    path = StoredSession(
        server=url, name=person, cookie=cookie, csrf_token=str(response.json()["csrf_token"])
    ).save()
    console.print(f"signed in to {url} as {person}; session kept in {path}", markup=False)


def _end_quietly(stored: StoredSession) -> None:
    """End a session being replaced; one the server already ended is no matter."""
    with open_remote(stored) as remote:
        remote.raw("DELETE", "/v1/session")


def logout() -> None:
    """End the stored session on the server and remove it from this machine."""
    stored = load_session()
    if stored is None:
        console.print("not signed in")
        return
    with open_remote(stored) as remote:
        response = remote.raw("DELETE", "/v1/session")
    forget_session()
    if response.status_code in (204, 401):
        console.print(f"signed out of {stored.server}", markup=False)
        return
    err_console.print(
        f"the session file is removed; the server answered: {problem_line(response)}",
        markup=False,
    )
    raise typer.Exit(exit_code_for(response.status_code))


def whoami(ctx: typer.Context) -> None:
    """Who commands run as: the signed-in person and server, or the local operator."""
    root = ctx.find_root()
    stored = None if root.params.get("local") else load_session()
    url = _server(ctx, None)
    if stored is None or (url is not None and url != stored.server):
        if url is not None:
            fail(f"not signed in to {url}: run `warden login --server {url}`")
        # Here: the request context it comes from imports the API's (Starlette's) types.
        from governance.kit.context import local_operator

        console.print(f"direct database mode: local operator {local_operator()}", markup=False)
        return
    with open_remote(stored) as remote:
        response = remote.raw("GET", "/v1/sessions")
        if not response.is_success:
            remote.refuse(response)
    console.print(f"{stored.name} at {stored.server}", markup=False)
