"""Outgoing HTTP clients that share one verifying TLS context per process.

A new ``httpx.Client`` builds a TLS context and loads the CA bundle into it: about 20 ms of CPU,
paid on every witness round, identity-provider call or CLI command that opens a client. The
context is built once, on first use, honouring ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` as httpx
does; the trust it grants does not change between clients.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    """This process's verifying TLS context (CA bundle loaded once)."""
    return httpx.create_ssl_context()


def client(**options: Any) -> httpx.Client:
    """An ``httpx.Client`` with ``options``, verifying TLS with :func:`tls_context`."""
    return httpx.Client(verify=tls_context(), **options)
