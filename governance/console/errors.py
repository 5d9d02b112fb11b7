"""Errors on console pages: an HTML page for a person, where the API answers problem+json.

The app's handlers (governance/kit/problems.py) stay in charge of everything else: this module
wraps each one and takes over only for paths under ``/console/``. A request without a session
is sent to the sign-in page (htmx is told with ``HX-Redirect``, which it follows itself).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from governance.console.render import render
from governance.errors import WardenError

PREFIX = "/console/"
SIGN_IN = "/console/sign-in"

Handler = Callable[[Request, Any], Response | Awaitable[Response]]


def _status_and_detail(exc: Exception) -> tuple[int, str, str]:
    if isinstance(exc, WardenError):
        return exc.status_code, exc.title, exc.message
    if isinstance(exc, RequestValidationError):
        first: dict[str, Any] = next(iter(exc.errors()), {})
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return 422, "Invalid form", f"{where}: {first.get('msg', 'invalid')}".strip(": ")
    if isinstance(exc, StarletteHTTPException):
        titles = {404: "Not found", 405: "Method not allowed", 413: "Too large"}
        return exc.status_code, titles.get(exc.status_code, "Refused"), str(exc.detail)
    return 500, "Something went wrong", "the error was logged; nothing was changed"


def sign_in_redirect(request: Request) -> Response:
    """To the sign-in page, coming back here (a GET) afterwards."""
    back = "/console/"
    if request.method == "GET":
        # The query too: /console/cli-login needs its challenge after sign-in.
        query = request.url.query
        back = f"{request.url.path}?{query}" if query else request.url.path
    target = f"{SIGN_IN}?next={quote(back, safe='/')}"
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def _page(request: Request, exc: Exception) -> Response:
    status, title, detail = _status_and_detail(exc)
    if status == 401:
        return sign_in_redirect(request)
    headers = {}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return render(
        request,
        "error.html.j2",
        {"status": status, "title": title, "detail": detail},
        status_code=status,
        headers=headers,
    )


def install(app: FastAPI) -> None:
    """Answer errors under ``/console/`` as pages; leave every other path to the API's."""
    for kind in (WardenError, RequestValidationError, StarletteHTTPException, Exception):
        api_handler = app.exception_handlers.get(kind)
        if api_handler is None:
            continue

        async def handler(
            request: Request, exc: Exception, api_handler: Handler = api_handler
        ) -> Response:
            # A server error keeps the API's handler, which logs it.
            if request.url.path.startswith(PREFIX) and _status_and_detail(exc)[0] < 500:
                return _page(request, exc)
            answer = api_handler(request, exc)
            return answer if isinstance(answer, Response) else await answer

        app.exception_handlers[kind] = handler
