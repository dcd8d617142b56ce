"""OpenTelemetry (``GENAPI_OTEL=1``): a real gateway and worker export their spans with the
console exporter; the worker's span is a child of the gateway's SERVER span, in one trace."""

from __future__ import annotations

import json
import subprocess
import sys

from gateway_app import processes

from .conftest import ROOT, call, request

TRACED = dict(GENAPI_OTEL="1", OTEL_TRACES_EXPORTER="console")


def spans_in(text: str) -> list[dict]:
    """The spans the console exporter printed (indented JSON objects) among other log lines."""
    decoder, spans, index = json.JSONDecoder(), [], 0
    while (start := text.find("{\n", index)) != -1:
        try:
            value, index = decoder.raw_decode(text, start)
        except ValueError:
            index = start + 1
            continue
        if isinstance(value, dict) and "context" in value and "kind" in value:
            spans.append(value)
    return spans


def test_a_call_is_one_trace_from_the_gateway_to_the_worker(fresh_stack):
    worker = fresh_stack.start_worker("tests.services.sample", **TRACED)
    gateway = fresh_stack.start_gateway(worker, **TRACED)
    with gateway.connect() as ws:
        assert call(ws, request("add", {"a": 2, "b": 3}, request_id="traced-1"))["result"] == 5

    def both_exported() -> bool:
        return (any(s["name"] == "sample/add" for s in spans_in(fresh_stack.log_of(gateway.process)))
                and any(s["name"] == "sample.add" for s in spans_in(fresh_stack.log_of(worker))))

    processes.wait_until(both_exported, 10, "both spans exported")
    server = next(s for s in spans_in(fresh_stack.log_of(gateway.process)) if s["name"] == "sample/add")
    task = next(s for s in spans_in(fresh_stack.log_of(worker)) if s["name"] == "sample.add")
    assert server["kind"] == "SpanKind.SERVER" and task["kind"] == "SpanKind.CONSUMER"
    assert task["context"]["trace_id"] == server["context"]["trace_id"]
    assert task["parent_id"] == server["context"]["span_id"]
    assert server["attributes"]["rpc.service"] == "sample" and server["attributes"]["genapi.outcome"] == "ok"
    assert server["attributes"]["genapi.request_id"] == "traced-1"
    assert server["status"]["status_code"] == "UNSET"


def test_a_failed_call_marks_its_span_as_an_error(fresh_stack):
    worker = fresh_stack.start_worker("tests.services.sample", **TRACED)
    gateway = fresh_stack.start_gateway(worker, **TRACED)
    with gateway.connect() as ws:
        assert call(ws, request("boom", request_id="traced-2"))["success"] is False
    processes.wait_until(lambda: any(s["name"] == "sample/boom" for s in spans_in(fresh_stack.log_of(gateway.process))),
                         10, "the span of the failed call")
    span = next(s for s in spans_in(fresh_stack.log_of(gateway.process)) if s["name"] == "sample/boom")
    assert span["status"]["status_code"] == "ERROR" and span["attributes"]["genapi.outcome"] == "error"


def test_tracing_without_an_exporter_fails_at_start_with_the_fix(fresh_stack):
    done = subprocess.run([sys.executable, "-m", "gateway_app", "gateway", "--port", str(processes.free_port())],
                          env=fresh_stack.env(GENAPI_OTEL="1", OTEL_TRACES_EXPORTER="zipkin"), cwd=str(ROOT),
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode != 0
    assert "OTEL_TRACES_EXPORTER must be otlp, console or none" in done.stderr
