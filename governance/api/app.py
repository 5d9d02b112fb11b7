"""The FastAPI application factory."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from governance import __version__
from governance.api import health, problems
from governance.api.direct import DirectEntry
from governance.api.middleware import GovernedRequestMiddleware
from governance.api.security_headers import SecurityHeaders
from governance.config import Settings
from governance.plugins import optional_module
from governance.runtime import Runtime
from governance.witness.cosigning import start_cosigner

logger = logging.getLogger(__name__)

# Each domain that serves HTTP has an ``endpoints`` module exposing ``router``. The app
# matches routes in this order, so the hot path comes first: a predict call is routed after
# one match instead of a scan through every domain.
DOMAINS = (
    "predict",
    "identity",
    "policy",
    "registry",
    "audit",
    "records",
    "vault",
    "datasets",
    "privacy",
    "fairness",
    "reports",
)
# Hot-path domains: their routes are added to the app's own router, not included. FastAPI
# matches an included router through its per-request effective-route machinery (about a tenth
# of a governed prediction's CPU, measured); a route of the app's own is one regex match.
DIRECT_DOMAINS = frozenset({"predict"})
# The only routes without a declared permission. tests/api/test_permissions.py enforces this.
# /v1/enrol takes no key: the one-time enrolment code it redeems is the proof.
EXEMPT_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/v1/enrol",
    }
)


class WardenApp(FastAPI):
    """The FastAPI app, whose lean routes are entered directly (see governance/api/direct.py)."""

    direct: DirectEntry | None = None

    def add_middleware(self, middleware_class: Any, *args: Any, **kwargs: Any) -> None:
        if self.direct is not None:
            raise RuntimeError("middleware added after the direct entry would not run for it")
        super().add_middleware(middleware_class, *args, **kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        direct = self.direct
        if direct is not None and direct.claim(scope):
            await direct(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def domain_routers() -> list[tuple[str, APIRouter]]:
    routers = []
    for domain in DOMAINS:
        module = optional_module(f"governance.{domain}.endpoints")
        if module is not None:
            routers.append((domain, module.router))
    return routers


def create_app(
    settings: Settings, runtime: Runtime | None = None, *, freeze_heap: bool = False
) -> WardenApp:
    """Build the app. The runtime starts with the app and stops with it.

    Args:
        settings: the validated settings.
        runtime: an already-built runtime (tests), else one is built from the settings.
        freeze_heap: once started, move every object alive then (imported modules, loaded
            models, the policy) out of the garbage collector's sight with ``gc.freeze()``.
            A full collection otherwise walks that whole heap, over 250 ms with the libraries
            Warden imports, which stalls every request in flight. For the server process
            (``warden serve``); a process that builds many apps (the tests) leaves it off.
    """
    rt = runtime or Runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt.start()
        # Witnesses are called from a thread of their own, never from a request.
        cosigner = start_cosigner(settings, rt.sessions)
        if freeze_heap:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            if cosigner is not None:
                cosigner.stop(timeout=settings.witness_timeout_seconds + 1)
            rt.stop()

    app = WardenApp(
        title="Warden",
        version=__version__,
        description="Governance service for AI models: policy-gated predictions, encrypted "
        "records, DP training, fairness gate, tamper-evident audit log. Errors are RFC 9457 "
        "problem+json.",
        lifespan=lifespan,
    )
    app.state.runtime = rt
    problems.install(app)
    routers = domain_routers()
    hot: list[BaseRoute] = []
    for domain, router in routers:
        if domain in DIRECT_DOMAINS:
            # The routes carry their full paths already (the router's prefix is applied when
            # a route is declared); nothing is set at inclusion for these routers.
            hot.extend(router.routes)
    # Ahead of the OpenAPI and docs routes FastAPI added when it was built.
    app.router.routes[0:0] = hot
    app.include_router(health.router)
    for domain, router in routers:
        if domain not in DIRECT_DOMAINS:
            app.include_router(router)
    problems.document(app)
    app.add_middleware(
        GovernedRequestMiddleware,
        max_body_bytes=settings.max_body_bytes,
        security_headers=SecurityHeaders(app),
    )
    app.direct = DirectEntry(app, max_body_bytes=settings.max_body_bytes)
    return app
