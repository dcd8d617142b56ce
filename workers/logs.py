"""Log lines: human-readable text, or one JSON object per line (``GENAPI_LOG_FORMAT=json``).

:func:`configure` gives the ``genapi`` loggers a handler of their own (gunicorn leaves the
root logger without one), and :func:`access_log` subscribes the one-line-per-request log to
the telemetry events: at the gateway one line per answered request (written a moment later,
off the request's path: :mod:`workers.deferred`), at a worker one line per call it ran. Those
lines carry ids, names, outcome and duration, never arguments, results or tokens.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

from . import signals
from .deferred import later

#: the record attribute that carries a line's structured fields
FIELDS = "genapi_fields"

access = logging.getLogger("genapi.access")

#: what the gateway's line says about a request, in this order
REQUEST_FIELDS = ("request_id", "service", "request_type", "version", "mode", "outcome", "duration_ms", "node",
                  "user_id")
#: what a worker's line says about a call
CALL_FIELDS = ("request_id", "task", "task_id", "mode", "outcome", "duration_ms", "pool_name")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, FIELDS, None) or {})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, FIELDS, None)
        if fields:
            text += " " + " ".join(f"{key}={_text(value)}" for key, value in fields.items())
        return text


def _text(value: Any) -> str:
    text = "-" if value is None else str(value)
    return json.dumps(text) if (" " in text or not text) else text


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure(log_format: str, level: int = logging.INFO) -> None:
    """A stderr handler for the ``genapi`` loggers (once per process)."""
    root = logging.getLogger("genapi")
    for handler in list(root.handlers):
        if getattr(handler, "_genapi", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._genapi = True  # ours, replaced on reconfiguration
    handler.setFormatter(formatter(log_format))
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def reformat_handlers(logger: logging.Logger, log_format: str) -> None:
    """Give every handler of ``logger`` our formatter (Celery's own loggers, at a worker)."""
    for handler in logger.handlers:
        handler.setFormatter(formatter(log_format))


def _record(message: str, names: tuple[str, ...], fields: dict) -> logging.LogRecord:
    """One access line's record; built without logging's search for the caller (it runs per request)."""
    line = {key: fields.get(key) for key in names}
    line["duration_ms"] = round(fields["duration"] * 1000, 3)
    return access.makeRecord(access.name, logging.INFO, __file__, 0, message, (), None, extra={FIELDS: line})


def _request_line(sender, **fields) -> None:
    if access.isEnabledFor(logging.INFO):
        fields["ended_at"] = time.time()
        later.put(_write_request_line, fields)


def _write_request_line(fields: dict) -> None:
    """The gateway's line, written off the request's path with the time the request ended."""
    record = _record("request", REQUEST_FIELDS, fields)
    record.created = fields["ended_at"]
    record.msecs = int(record.created * 1000) % 1000
    access.handle(record)


def _call_line(sender, **fields) -> None:
    if access.isEnabledFor(logging.INFO):
        if "reason" in fields:  # worker_pool.task.exception
            fields["outcome"] = "exception"
        access.handle(_record("call", CALL_FIELDS, fields))  # after the reply went out; pool children exit abruptly


def access_log(role: str) -> None:
    """Subscribe the per-request (``gateway``) or per-call (``worker``) line."""
    if role == "gateway":
        signals.executor_request_stop.connect(_request_line, weak=False)
        signals.executor_request_exception.connect(_request_line, weak=False)
    else:
        signals.worker_pool_task_stop.connect(_call_line, weak=False)
        signals.worker_pool_task_exception.connect(_call_line, weak=False)


def log_event(sender, event: str, **fields) -> None:
    """A telemetry receiver that logs every event at DEBUG (the original's default logger):
    ``GENAPI_TELEMETRY_RECEIVERS=workers.logs:log_event`` with ``GENAPI_LOG_LEVEL=debug``."""
    logging.getLogger("genapi.telemetry").debug(event, extra={FIELDS: {"event": event, **fields}})
