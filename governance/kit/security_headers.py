"""The security headers every answer carries, precomputed once per app.

- ``X-Content-Type-Options: nosniff`` on every answer: a browser never reads a JSON or problem
  document (which can quote what a caller sent) as HTML or script.
- ``Cache-Control: no-store`` on every ``/v1`` answer. An API key, an enrolment code, a token or
  a decrypted record is only ever in a ``/v1`` answer, and every ``/v1`` answer is the outcome
  of one caller's authorization: none may sit in a shared cache or a browser's disk cache for
  the next user. Nothing under ``/v1`` is meant to be cached, so no route is exempt. The
  health probes and the OpenAPI document (outside ``/v1``) carry nothing of the kind.
- ``Content-Security-Policy`` on every answer: ``default-src 'none'`` (nothing loads, nothing
  runs, no framing) everywhere but the two documentation pages. FastAPI's ``/docs`` and
  ``/redoc`` load their scripts and styles from jsDelivr; their policy allows exactly those
  hosts, and ``/docs`` runs its one inline script by its SHA-256 hash, not ``'unsafe-inline'``.
  Redoc injects its own ``<style>`` elements, so its page allows inline styles (not scripts).

The tuples are appended in the governed middleware's send wrapper, which every answer of the
app passes through: no work per request beyond the
append. The server's own refusals (``governance/api/server_limits.py``) carry the same
headers.
"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html

Header = tuple[bytes, bytes]

NOSNIFF: Header = (b"x-content-type-options", b"nosniff")
NO_STORE: Header = (b"cache-control", b"no-store")
# Nothing loads, nothing runs, nothing frames the answer, no form posts anywhere.
STRICT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# What FastAPI's documentation pages load (fastapi/openapi/docs.py).
_CDN = "https://cdn.jsdelivr.net"
_FAVICON = "https://fastapi.tiangolo.com"

# The headers of an answer the server gives without the app (431, 408, 503, 400).
SERVER_ANSWER: tuple[Header, ...] = (
    NOSNIFF,
    NO_STORE,
    (b"content-security-policy", STRICT_CSP.encode()),
)

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def inline_script_hashes(html: str) -> list[str]:
    """The CSP source expressions (``'sha256-...'``) of every inline script of ``html``."""
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    ]


def swagger_ui_csp(app: FastAPI) -> str:
    """The policy of the app's ``/docs`` page: jsDelivr's files and its own inline script."""
    # Rendered as FastAPI renders the page (no root path: `warden serve` sets none).
    html = get_swagger_ui_html(
        openapi_url=app.openapi_url or "",
        title=f"{app.title} - Swagger UI",
        oauth2_redirect_url=app.swagger_ui_oauth2_redirect_url,
        init_oauth=app.swagger_ui_init_oauth,
        swagger_ui_parameters=app.swagger_ui_parameters,
    ).body
    scripts = " ".join([_CDN, *inline_script_hashes(bytes(html).decode())])
    return (
        f"default-src 'none'; script-src {scripts}; style-src {_CDN}; "
        f"img-src 'self' data: {_FAVICON}; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


def redoc_csp() -> str:
    """The policy of the ``/redoc`` page: jsDelivr's bundle, Google's fonts, inline styles."""
    return (
        f"default-src 'none'; script-src {_CDN}; "
        "style-src 'unsafe-inline' https://fonts.googleapis.com; "
        "font-src https://fonts.gstatic.com; "
        f"img-src 'self' data: {_FAVICON} https://cdn.redoc.ly; connect-src 'self'; "
        "worker-src blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


class SecurityHeaders:
    """The headers appended to each answer of one app, chosen by the request's path.

    Args:
        app: the app, for the documentation pages' paths and the ``/docs`` inline script.
    """

    def __init__(self, app: FastAPI) -> None:
        strict = (b"content-security-policy", STRICT_CSP.encode())
        self.governed: tuple[Header, ...] = (NOSNIFF, NO_STORE, strict)
        self.public: tuple[Header, ...] = (NOSNIFF, strict)
        # A problem document the middleware writes itself (413, 422, 503): the strictest set.
        self.problem = self.governed
        pages: dict[str, tuple[Header, ...]] = {}
        if app.docs_url:
            pages[app.docs_url] = (
                NOSNIFF,
                (b"content-security-policy", swagger_ui_csp(app).encode()),
            )
        if app.redoc_url:
            pages[app.redoc_url] = (NOSNIFF, (b"content-security-policy", redoc_csp().encode()))
        self.pages = pages

    def for_path(self, path: str, governed: bool) -> tuple[Header, ...]:
        """The headers of an answer to ``path`` (``governed``: under ``/v1``, never stored)."""
        if governed:
            return self.governed
        return self.pages.get(path, self.public)
