"""The console's own scripts and styles, served from the package: no CDN, no third party."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

STATIC = Path(__file__).with_name("static")
PREFIX = "/console/static"
ROUTE = PREFIX + "/{name}"
# Only these files are served: never a path the caller chose.
_MEDIA = {
    "htmx.min.js": "text/javascript; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "verify.js": "text/javascript; charset=utf-8",
    "auditor.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
# The files change only with the installed package; a new version is a new server.
_CACHE = "public, max-age=3600"

router = APIRouter(include_in_schema=False)


@cache
def _read(name: str) -> bytes:
    return (STATIC / name).read_bytes()


@router.get(ROUTE)
def asset(name: str) -> Response:
    media = _MEDIA.get(name)
    if media is None or not (STATIC / name).is_file():
        raise HTTPException(404, "no such console asset")
    return Response(_read(name), media_type=media, headers={"Cache-Control": _CACHE})
