"""The security headers every answer carries, precomputed once per app.

- ``X-Content-Type-Options: nosniff`` on every answer: a browser never reads a JSON or problem
  document (which can quote what a caller sent) as HTML or script.
- ``Cache-Control: no-store`` on every ``/v1`` answer. An API key, an enrolment code, a token or
  a decrypted record is only ever in a ``/v1`` answer, and every ``/v1`` answer is the outcome
  of one caller's authorization: none may sit in a shared cache or a browser's disk cache for
  the next user. Nothing under ``/v1`` is meant to be cached, so no route is exempt. The
  health probes and the OpenAPI document (outside ``/v1``) carry nothing of the kind.
- ``Content-Security-Policy`` on every answer: ``default-src 'none'`` (nothing loads, nothing
  runs, no framing) everywhere but the two documentation pages and the console (scripts and
  styles from the server only, no inline script, forms posted only to itself). ``/docs`` and
  ``/redoc`` load their scripts and styles from the server itself
  (``governance/api/openapi_docs.py``): their policy allows ``'self'`` only, and ``/docs`` runs
  its one inline script by its SHA-256 hash, not ``'unsafe-inline'``. Redoc injects its own
  ``<style>`` elements, so its page allows inline styles (not scripts), and runs its search in a
  worker built from a ``blob:``.

The tuples are appended in the governed middleware's send wrapper, which every answer of the
app passes through: no work per request beyond the
append. The server's own refusals (``governance/api/server_limits.py``) carry the same
headers.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping

Header = tuple[bytes, bytes]

NOSNIFF: Header = (b"x-content-type-options", b"nosniff")
NO_STORE: Header = (b"cache-control", b"no-store")
# Nothing loads, nothing runs, nothing frames the answer, no form posts anywhere.
STRICT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
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


def swagger_ui_csp(html: str) -> str:
    """The policy of the Swagger UI page ``html``: the server's files and its inline script."""
    scripts = " ".join(["'self'", *inline_script_hashes(html)])
    return (
        f"default-src 'none'; script-src {scripts}; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


def redoc_csp() -> str:
    """The policy of the ReDoc page: the server's bundle, inline styles, a blob worker."""
    return (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; "
        "worker-src blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


def console_csp() -> str:
    """The console's policy: its own scripts and styles only, no inline script, forms to itself."""
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )


class SecurityHeaders:
    """The headers appended to each answer of one app, chosen by the request's path.

    Args:
        pages: the app's HTML pages (the documentation), each path with its own policy.
    """

    def __init__(self, pages: Mapping[str, str], console_prefix: str | None = None) -> None:
        strict = (b"content-security-policy", STRICT_CSP.encode())
        self.governed: tuple[Header, ...] = (NOSNIFF, NO_STORE, strict)
        # Console pages hold what their API calls answer: never stored, and their own policy.
        self.console_prefix = console_prefix
        console = (b"content-security-policy", console_csp().encode())
        self.console: tuple[Header, ...] = (NOSNIFF, NO_STORE, console)
        self.console_assets: tuple[Header, ...] = (NOSNIFF, console)
        self.public: tuple[Header, ...] = (NOSNIFF, strict)
        # A problem document the middleware writes itself (413, 422, 503): the strictest set.
        self.problem = self.governed
        self.pages: dict[str, tuple[Header, ...]] = {
            path: (NOSNIFF, (b"content-security-policy", policy.encode()))
            for path, policy in pages.items()
        }

    def for_path(self, path: str, governed: bool) -> tuple[Header, ...]:
        """The headers of an answer to ``path`` (``governed``: under ``/v1``, never stored)."""
        if self.console_prefix is not None and path.startswith(self.console_prefix):
            return self.console if governed else self.console_assets
        if governed:
            return self.governed
        return self.pages.get(path, self.public)
