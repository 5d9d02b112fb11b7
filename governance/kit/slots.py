"""Typed slots on the app's state: the wiring point puts what it built, dependencies read it.

A slot is itself a FastAPI dependency, so an endpoint asks for one collaborator by type
(``Annotated[PolicyEngine, Depends(POLICY)]``) and never sees what else the process holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar, cast

# FastAPI reads this annotation of Slot.__call__ at run time: the connection parameter.
from starlette.requests import HTTPConnection

from governance.errors import ServiceUnavailable

if TYPE_CHECKING:
    from starlette.applications import Starlette

T = TypeVar("T")


class Slot(Generic[T]):
    """One named thing on ``app.state``, read back with its type."""

    def __init__(self, name: str) -> None:
        self.name = f"warden_{name}"

    def __repr__(self) -> str:
        return f"Slot({self.name!r})"

    def put(self, app: Starlette, value: T) -> None:
        setattr(app.state, self.name, value)

    def get(self, app: Starlette) -> T:
        try:
            value = getattr(app.state, self.name)
        except AttributeError:
            # An app built without its wiring serves nothing (fail closed).
            raise ServiceUnavailable(f"{self.name} is not wired") from None
        return cast(T, value)

    def find(self, app: object) -> T | None:
        """The value, or None where this app (or whatever ``app`` is) holds none."""
        return cast("T | None", getattr(getattr(app, "state", None), self.name, None))

    async def __call__(self, connection: HTTPConnection) -> T:
        # async: FastAPI runs a plain ``def`` dependency in the thread pool, one hop per request.
        return self.get(connection.app)
