"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from governance import __version__
from governance.api import health, metrics, openapi, openapi_docs
from governance.config import Settings
from governance.console import errors as console_errors
from governance.console import routes as console_routes
from governance.kit import problems, tracing
from governance.kit.middleware import CONSOLE_PREFIX, GovernedRequestMiddleware
from governance.kit.observed import ObservedRequestMiddleware
from governance.kit.security_headers import SecurityHeaders
from governance.plugins import optional_module
from governance.registry.upload import IMPORT_PATH, IMPORT_SLACK_BYTES
from governance.runtime import Runtime
from governance.witness.cosigning import start_cosigner

logger = logging.getLogger(__name__)

# Each domain that serves HTTP has an ``endpoints`` module exposing ``router``, included in
# this order.
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
HOT = "predict"
# The only routes without a declared permission. tests/api/test_permissions.py enforces this.
# /v1/enrol takes no key: the one-time enrolment code it redeems is the proof.
EXEMPT_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/openapi.json",
        openapi_docs.DOCS,
        openapi_docs.ASSET_ROUTE,
        openapi_docs.REDOC,
        "/v1/enrol",
        # POST: signing in takes no key, the password (and TOTP code) is the proof; DELETE
        # (sign-out) is guarded like any route.
        "/v1/session",
        # Single sign-on: the provider's signed id_token is the proof (governance/identity/oidc.py).
        "/v1/session/oidc/start",
        "/v1/session/oidc/callback",
        # The CLI's browser sign-in: the one-time code and the verifier behind its challenge
        # are the proof (governance/identity/cli_grants.py).
        "/v1/session/cli",
        # The console's sign-in form and its static files (governance/console/routes.py).
        *console_routes.OPEN_PATHS,
    }
)


def domain_routers() -> list[tuple[str, APIRouter]]:
    routers = []
    for domain in DOMAINS:
        module = optional_module(f"governance.{domain}.endpoints")
        if module is not None:
            routers.append((domain, module.router))
    return routers


def create_app(
    settings: Settings, runtime: Runtime | None = None, *, freeze_heap: bool = False
) -> FastAPI:
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
    flush_at_stop: list[Callable[[], object]] = []  # the span exporter's last batch

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
            # Off the event loop: the writer process's answers to the last appends (refusal
            # summaries, the final checkpoint) are read on this loop, which must keep running.
            await asyncio.to_thread(rt.stop)
            for flush in flush_at_stop:
                flush()

    app = FastAPI(
        title="Warden",
        version=__version__,
        description="Governance service for AI models: policy-gated predictions, encrypted "
        "records, DP training, fairness gate, tamper-evident audit log. Errors are RFC 9457 "
        "problem+json.",
        lifespan=lifespan,
        # Served from the package by openapi_docs, not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    # Tests reach the whole runtime here; endpoints only the slots it exposes.
    app.state.runtime = rt
    rt.expose(app)
    problems.install(app)
    routers = domain_routers()
    # The hot path is tried first, ahead of FastAPI's docs routes, as routes of the app's own
    # router: an included router is matched through a second lookup per request. Its routes
    # carry their full paths (a router's prefix is applied when a route is declared).
    app.router.routes[0:0] = [
        r for domain, router in routers if domain == HOT for r in router.routes
    ]
    app.include_router(health.router)
    app.include_router(metrics.router)
    for domain, router in routers:
        if domain != HOT:
            app.include_router(router)
    app.include_router(console_routes.console_router())
    problems.document(app)
    openapi.install(app)
    console_errors.install(app)
    pages = openapi_docs.install(app)
    app.add_middleware(
        GovernedRequestMiddleware,
        max_body_bytes=settings.max_body_bytes,
        # An ONNX import streams its graph to disk; the slack is the multipart framing and schema.
        upload_limits={IMPORT_PATH: settings.model_import_max_bytes + IMPORT_SLACK_BYTES},
        security_headers=SecurityHeaders(pages, console_prefix=CONSOLE_PREFIX),
        open_pages=console_routes.OPEN_PAGES,
    )
    # Outside the governed-request middleware: it sees each answer as the client does.
    app.add_middleware(ObservedRequestMiddleware, access_log=settings.access_log)
    if settings.tracing:
        # Around the whole stack, so that every route (predict included) has its span.
        tracer_provider = tracing.install(app, (rt.engine, rt.read_engine))
        flush_at_stop.append(tracer_provider.shutdown)
    return app
