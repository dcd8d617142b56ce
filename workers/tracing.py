"""OpenTelemetry spans per call (optional: ``pip install 'celerygenapi[otel]'`` and ``GENAPI_OTEL=1``).

The gateway opens a SERVER span named ``service/request_type`` when a request arrives and
ends it with the call's terminal frame; its context travels to the worker in the task's
``genapi`` header (W3C ``traceparent``), where the task runs inside a CONSUMER span that is
its child. Without ``GENAPI_OTEL`` nothing here is imported and a call pays one ``None`` check.

Where spans go: the process's tracer provider if the application configured one, else one
made here from the standard variables: ``OTEL_SERVICE_NAME`` (default ``genapi-gateway`` /
``genapi-worker``) and ``OTEL_TRACES_EXPORTER`` (``otlp`` — the default, which needs
``opentelemetry-exporter-otlp-proto-http`` and reads ``OTEL_EXPORTER_OTLP_ENDPOINT`` —,
``console`` or ``none``).
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import AbstractContextManager, nullcontext
from typing import Any

log = logging.getLogger("genapi.tracing")

_active: Tracing | None = None


class TracingError(RuntimeError):
    """``GENAPI_OTEL=1`` but the OpenTelemetry packages it needs are missing."""


class Tracing:
    """Starts and ends the spans of calls; one per process."""

    def __init__(self, role: str) -> None:
        try:
            from opentelemetry import propagate, trace
        except ImportError:
            raise TracingError("GENAPI_OTEL=1 needs OpenTelemetry: pip install 'celerygenapi[otel]'") from None
        self._trace, self._propagate = trace, propagate
        _ensure_provider(role)
        self.tracer = trace.get_tracer("celerygenapi")

    # ------------------------------------------------------------------ gateway

    def server_span(self, service: str, request_type: str, started_monotonic: float, attributes: dict) -> Any:
        """A SERVER span that began when the request's frame arrived."""
        ago_ns = int((time.monotonic() - started_monotonic) * 1e9)
        return self.tracer.start_span(f"{service}/{request_type}", kind=self._trace.SpanKind.SERVER,
                                      start_time=time.time_ns() - ago_ns, attributes=attributes)

    def carrier(self, span: Any) -> dict:
        """The span's context as task-header fields (``traceparent``…)."""
        carrier: dict[str, str] = {}
        self._propagate.inject(carrier, context=self._trace.set_span_in_context(span))
        return carrier

    def end(self, span: Any, outcome: str, error: str | None = None) -> None:
        span.set_attribute("genapi.outcome", outcome)
        if error is not None:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, error))
        span.end()

    # ------------------------------------------------------------------ worker

    def consumer_span(self, task_name: str, carrier: dict | None, attributes: dict) -> AbstractContextManager:
        """The task's span, a child of the gateway's when the header carries its context."""
        context = self._propagate.extract(carrier) if carrier else None
        return self.tracer.start_as_current_span(task_name, context=context, kind=self._trace.SpanKind.CONSUMER,
                                                 attributes=attributes)


def _ensure_provider(role: str) -> None:
    from opentelemetry import trace

    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return  # the application set one up: use it
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME") or f"genapi-{role}"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    exporter = (os.environ.get("OTEL_TRACES_EXPORTER") or "otlp").strip().lower()
    if exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    elif exporter == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise TracingError("OTEL_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-http "
                               "(pip install 'celerygenapi[otel]'), or set OTEL_TRACES_EXPORTER=console") from None
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    elif exporter != "none":
        raise TracingError(f"OTEL_TRACES_EXPORTER must be otlp, console or none, got {exporter!r}")
    trace.set_tracer_provider(provider)


def require() -> None:
    """Fail now, with the fix in the message, if ``GENAPI_OTEL=1`` cannot work (``genapi``
    commands call this before they start servers)."""
    try:
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        raise TracingError("GENAPI_OTEL=1 needs OpenTelemetry: pip install 'celerygenapi[otel]'") from None
    exporter = (os.environ.get("OTEL_TRACES_EXPORTER") or "otlp").strip().lower()
    if exporter not in ("otlp", "console", "none"):
        raise TracingError(f"OTEL_TRACES_EXPORTER must be otlp, console or none, got {exporter!r}")
    if exporter == "otlp":
        try:
            import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401
        except ImportError:
            raise TracingError("OTEL_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-http "
                               "(pip install 'celerygenapi[otel]'), or set OTEL_TRACES_EXPORTER=console") from None


def install(enabled: bool, role: str) -> Tracing | None:
    """The process's tracing (``None`` when off); made once."""
    global _active
    if enabled and _active is None:
        _active = Tracing(role)
        log.info("OpenTelemetry tracing on (%s)", role)
    return _active if enabled else None


def active() -> Tracing | None:
    return _active


def task_span(task_name: str, carrier: dict | None, attributes: dict) -> AbstractContextManager:
    """The worker's span of one task, or nothing when tracing is off or the call carries no context."""
    if _active is None or not carrier:
        return nullcontext()
    return _active.consumer_span(task_name, carrier, attributes)
