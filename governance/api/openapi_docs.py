"""The documentation pages, ``/docs`` (Swagger UI) and ``/redoc``, served with their assets.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, and are blank where the server has
no internet or a browser blocks third parties. The ``fastapi-offline`` package ships both
bundles (Swagger UI 5, which reads OpenAPI 3.1); Warden serves them from
``/docs/assets/<file>``, so each page loads only from the server itself. Each page's
Content-Security-Policy is computed here from the very HTML it serves
(:mod:`governance.kit.security_headers`).
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from governance.kit.security_headers import redoc_csp, swagger_ui_csp

DOCS = "/docs"
REDOC = "/redoc"
ASSETS = "/docs/assets"
ASSET_ROUTE = ASSETS + "/{name}"
# Only these files are served: never a path the caller chose.
_MEDIA = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
# The bundles change only with the installed package.
_ASSET_CACHE = "public, max-age=86400"


def _static_dir() -> Path:
    # Found without importing the package: its __init__ builds a FastAPI app factory.
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the fastapi-offline package (the documentation bundles) is missing")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@cache
def _asset(name: str) -> bytes:
    return (_static_dir() / name).read_bytes()


def swagger_html(app: FastAPI) -> str:
    """The ``/docs`` page: Swagger UI over the app's document, from the server's assets."""
    return bytes(
        get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
        ).body
    ).decode()


def redoc_html(app: FastAPI) -> str:
    """The ``/redoc`` page, without Google's fonts."""
    return bytes(
        get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        ).body
    ).decode()


def install(app: FastAPI) -> dict[str, str]:
    """Add the two pages and their assets to an app built with ``docs_url=None,
    redoc_url=None``.

    Returns:
        Each page's path and the Content-Security-Policy it must be answered with.

    Raises:
        RuntimeError: the fastapi-offline package, or one of its files, is missing.
    """
    # At start, not on a reader's first visit: a server without its documentation bundles.
    missing = [name for name in _MEDIA if not (_static_dir() / name).is_file()]
    if missing:
        raise RuntimeError(f"documentation assets missing: {', '.join(missing)}")
    swagger, redoc = swagger_html(app), redoc_html(app)

    @app.get(DOCS, include_in_schema=False)
    def docs_page() -> HTMLResponse:
        return HTMLResponse(swagger)

    @app.get(REDOC, include_in_schema=False)
    def redoc_page() -> HTMLResponse:
        return HTMLResponse(redoc)

    @app.get(ASSET_ROUTE, include_in_schema=False)
    def docs_asset(name: str) -> Response:
        media = _MEDIA.get(name)
        if media is None:
            raise HTTPException(404, "no such documentation asset")
        return Response(_asset(name), media_type=media, headers={"Cache-Control": _ASSET_CACHE})

    return {DOCS: swagger_ui_csp(swagger), REDOC: redoc_csp()}
