"""The lean routes entered straight from the server, past Starlette's stack and router.

Every request to a Starlette app walks its whole middleware stack and tries each route in turn,
and every suspension of a prediction (the micro-batcher, the journal) walks those frames twice
more; entering the predict route directly saves that CPU on the hot path.

:class:`DirectEntry` claims a request only if it would end at a :class:`LeanRoute` with a method
that route serves, and then runs the pieces of the stack that do something for it: the app's
``Exception`` handler (a logged 500 problem), ``GovernedRequestMiddleware`` itself (request id,
body limits, NUL refusal, audit entry or 503), the route's match, and the app's exception
handlers looked up by class, so every error is the same problem+json as through the stack.
The entry refuses an app with any other middleware, and ``WardenApp`` refuses middleware added
later, so the two ways in cannot drift apart. Everything else goes through the full app.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from governance.api.lean_route import LeanRoute
from governance.api.middleware import RESPONSE_STARTED, GovernedRequestMiddleware

ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


def _async_handlers(app: FastAPI) -> dict[Any, ExceptionHandler]:
    handlers: dict[Any, ExceptionHandler] = {}
    for key, handler in app.exception_handlers.items():
        if not inspect.iscoroutinefunction(handler):
            raise TypeError(f"the direct entry awaits every exception handler; {key!r} is sync")
        handlers[key] = handler
    return handlers


class DirectEntry:
    """Serve ``app``'s lean routes without its middleware stack; see the module docstring.

    Args:
        app: the built app (its routes, exception handlers and Warden's middleware in place).
        max_body_bytes: the body limit, as given to ``GovernedRequestMiddleware`` in the stack.
    """

    def __init__(self, app: FastAPI, *, max_body_bytes: int) -> None:
        added = [m.cls for m in app.user_middleware]
        if added != [GovernedRequestMiddleware]:
            # What the app's stack would run for these routes and this entry would not.
            raise TypeError(
                f"the direct entry runs GovernedRequestMiddleware only; the app has {added}"
            )
        self.app = app
        self.routes = tuple(r for r in app.router.routes if isinstance(r, LeanRoute))
        self.methods = frozenset(m for r in self.routes for m in (r.methods or ()))
        self.handlers = _async_handlers(app)
        bug = self.handlers.get(Exception)
        if bug is None:
            raise TypeError("the direct entry answers a bug with the app's handler for Exception")
        self.on_bug: ExceptionHandler = bug
        # As the stack's instance (its security headers included), with this entry's limit.
        kwargs: dict[str, Any] = {**app.user_middleware[0].kwargs, "max_body_bytes": max_body_bytes}
        self.governed = GovernedRequestMiddleware(self._handle, **kwargs)

    def claim(self, scope: Scope) -> bool:
        """Whether the request is one this entry serves; if so, fill in what the router would.

        A lean route that matches the path but not the method is left to the app (its 405).
        """
        if scope["type"] != "http" or scope["method"] not in self.methods:
            return False
        for route in self.routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                scope.update(child)
                scope["app"] = self.app
                scope.setdefault("router", self.app.router)
                return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.governed(scope, receive, send)
        except Exception as exc:
            # As ServerErrorMiddleware, without wrapping every message: the app's handler logs
            # the bug; its 500 goes out unless an answer has started (the governed middleware
            # has answered any bug below it), and the error goes on to the server's log.
            response = await self.on_bug(Request(scope), exc)
            if not scope["state"].get(RESPONSE_STARTED):
                await response(scope, receive, send)
            raise

    def _handler_for(self, exc: Exception) -> ExceptionHandler | None:
        # As ExceptionMiddleware: a handler for the status of an HTTP exception first, then
        # one for the exception's class; ``Exception`` itself is the bug handler of __call__.
        if isinstance(exc, HTTPException):
            by_status = self.handlers.get(exc.status_code)
            if by_status is not None:
                return by_status
        for cls in type(exc).__mro__:
            if cls is not Exception and cls in self.handlers:
                return self.handlers[cls]
        return None

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        route: LeanRoute = scope["route"]
        request = Request(scope, receive, send)
        try:
            response = await route.lean_handler(request)
        except Exception as exc:
            handler = self._handler_for(exc)
            if handler is None:
                raise  # a bug: the 500, audited, then logged (see __call__)
            response = await handler(request, exc)
        await response(scope, receive, send)
