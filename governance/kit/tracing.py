"""OpenTelemetry traces: optional (``warden[tracing]``), off unless ``WARDEN_TRACING`` is set.

When on, the FastAPI instrumentation wraps the whole app (every route, predict included) in
one server span per request, the SQLAlchemy instrumentation adds a span per statement (the
statement text with its placeholders, never its parameters), and the predict path opens child
spans for its steps through :func:`span`. Attributes name the route, the model, the policy
version and the decision, never a payload, a subject id or a principal's key.

While off, :func:`span` returns one shared do-nothing context manager: the hot path pays a
global read and a call, and the OpenTelemetry packages are never imported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.types import Scope

Attributes = Mapping[str, str | int | float | bool]


class _NoSpan:
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None


_NO_SPAN = _NoSpan()
_SCOPE_KEY = "warden.request_span"
_tracer: Any = None  # an opentelemetry Tracer while tracing is on


def enabled() -> bool:
    return _tracer is not None


def span(name: str, attributes: Attributes | None = None) -> Any:
    """A child span of the current one, as a context manager yielding it (None while off)."""
    if _tracer is None:
        return _NO_SPAN
    return _tracer.start_as_current_span(name, attributes=attributes)


def annotate(scope: Scope, attributes: Mapping[str, str | int | float | bool | None]) -> None:
    """Set attributes on the request's span; those that are None are left out."""
    request_span = scope.get(_SCOPE_KEY)
    if request_span is not None and request_span.is_recording():
        request_span.set_attributes({k: v for k, v in attributes.items() if v is not None})


# Attributes where the instrumentation writes the raw path or query, which can carry a subject
# id or other personal data (DELETE /v1/subjects/{subject_id}): rewritten to the template.
_RAW_TARGETS = ("http.target", "http.url", "url.path", "url.full", "url.query")


def _templated(app: Starlette) -> Any:
    from starlette.routing import Match

    def hook(span: Any, scope: dict[str, Any]) -> None:
        scope[_SCOPE_KEY] = span  # annotated once the answer is out (governance/kit/observed)
        if not span.is_recording():
            return
        template = "(no matching route)"
        for route in app.router.routes:
            if route.matches(scope)[0] == Match.FULL:
                template = str(getattr(route, "path_format", None) or getattr(route, "path", ""))
                break
        present = getattr(span, "attributes", None) or {}
        span.set_attributes(
            {k: ("" if k == "url.query" else template) for k in _RAW_TARGETS if k in present}
        )

    return hook


def install(app: FastAPI, engines: Iterable[Engine], *, exporter: Any = None) -> Any:
    """Trace ``app`` and ``engines``.

    Args:
        app: the FastAPI app, instrumented before it serves its first request.
        engines: the SQLAlchemy engines whose statements become spans.
        exporter: a span exporter (tests pass the SDK's in-memory one); default the OTLP/HTTP
            exporter, configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables.

    Returns:
        The tracer provider, whose ``shutdown()`` flushes what is left.

    Raises:
        ConfigurationError: the tracing packages are not installed.
    """
    global _tracer
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
        from opentelemetry.metrics import NoOpMeterProvider
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        from governance.errors import ConfigurationError

        raise ConfigurationError(
            "WARDEN_TRACING needs the tracing extra: pip install 'warden[tracing]'"
        ) from None
    provider = TracerProvider(resource=Resource.create({"service.name": "warden"}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    FastAPIInstrumentor.instrument_app(
        app,
        server_request_hook=_templated(app),
        tracer_provider=provider,
        meter_provider=NoOpMeterProvider(),
        # One span per request: the per-message receive/send spans add nothing an operator
        # follows a request by.
        exclude_spans=["receive", "send"],
    )
    db_tracer = provider.get_tracer("warden.db")
    usage = NoOpMeterProvider().get_meter("warden.db").create_up_down_counter("unused")
    for engine in engines:
        EngineTracer(db_tracer, engine, usage)
    _tracer = provider.get_tracer("warden")
    return provider


def uninstall() -> None:
    """Stop opening Warden's own spans (a test process that builds several apps)."""
    global _tracer
    _tracer = None
