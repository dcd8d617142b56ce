"""The wire contract: the Response frame, the error catalogue, Redis keys and reply messages.

Both sides import this module, so the strings clients depend on are written once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

#: Error strings of PRODUCT.md's catalogue. Functions below build the parametrised ones.
AUTH_REQUIRED = "Authentication required"
PERMISSION_DENIED = "Permission denied"
UNAVAILABLE = "Service temporarily unavailable"
TIMED_OUT = "Request timed out"
INTERNAL_ERROR = "Internal Server Error"
RATE_LIMIT_UNAVAILABLE = "Rate limit service unavailable"
#: Not in the original's catalogue: the client cancelled an async call (``gateway.cancel``).
CANCELLED = "Request cancelled"
#: Not in the original's catalogue: the client reads slower than its stream produces.
CLIENT_TOO_SLOW = "Client too slow: its outbound queue is full"

#: Services answered by the gateway itself; workers cannot register these names.
RESERVED_SERVICES = frozenset({"gateway", "relay"})

UNKNOWN_REQUEST_ID = "unknown"

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def invalid_request(detail: str) -> str:
    return f"Invalid request: {detail}"


def unsupported_function(request_type: str, version: str | None) -> str:
    return f"unsupported function: {request_type} version {version or 'latest'}"


def disabled_function(request_type: str, version: str) -> str:
    return f"disabled function: {request_type} version {version}"


def rate_limited(retry_after_s: int) -> str:
    return f"Rate limit exceeded. Please retry after {retry_after_s} seconds."


def invalid_arguments(detail: str) -> str:
    return f"Invalid arguments: {detail}"


def internal_error(detail: str | None, show_detail: bool) -> str:
    return f"{INTERNAL_ERROR}: {detail}" if show_detail and detail else INTERNAL_ERROR


def response(
    request_id: Any,
    *,
    result: Any = None,
    success: bool = False,
    error: str | None = None,
    is_async: bool = False,
    has_more: bool = False,
    can_retry: bool = False,
) -> dict:
    """A Response frame: always exactly the seven keys of the wire protocol."""
    return {
        "request_id": request_id,
        "result": result,
        "success": success,
        "error": error,
        "async": is_async,
        "has_more": has_more,
        "can_retry": can_retry,
    }


def error_frame(request_id: Any, error: str, can_retry: bool = False) -> dict:
    return response(request_id, error=error, can_retry=can_retry)


def encode(message: Any) -> str:
    """Serialise a frame or message as compact JSON (raises ``TypeError``/``ValueError``)."""
    return _dumps(message)


#: The control task every worker serves on its service queues: a gateway in pull mode asks
#: it for a service's configs. ``:`` cannot appear in a service name, so no function clashes.
DESCRIBE_TASK = "genapi:describe"


def task_name(service: str, request_type: str, version: str | None) -> str:
    """The Celery task name of a function, as Flower shows it: ``service.request_type@version``."""
    base = f"{service}.{request_type}"
    return f"{base}@{version}" if version else base


class Keys:
    """Names of every Redis key and channel, under one prefix (``genapi:`` by default)."""

    def __init__(self, prefix: str = "genapi:") -> None:
        self.prefix = prefix
        #: hash ``service|request_type|version`` -> FunConfig JSON (what gateways accepted)
        self.functions = f"{prefix}functions"
        #: hash field -> ``{"disabled": bool}``: an operator's choice, which no push undoes
        self.overrides = f"{prefix}overrides"
        #: hash field -> ms (Redis clock) a live worker last served the function
        self.seen = f"{prefix}seen"
        #: sorted set node id -> expiry (Redis clock, ms)
        self.nodes = f"{prefix}nodes"
        #: pub/sub channel announcing registry changes
        self.events = f"{prefix}events"
        #: list of PushConfigs waiting for a gateway to check and apply them
        self.push_inbox = f"{prefix}push:inbox"
        #: hash service -> the last accepted push (config_version, nodes, functions, time)
        self.pushed = f"{prefix}pushed"
        #: sorted set of failed-config entries (JSON) scored by expiry ms; and its id counter
        self.failed = f"{prefix}failed"
        self.failed_seq = f"{prefix}failed:seq"
        #: breaker names that have state (``service:S``, ``worker:S:NODE``); one hash each
        self.breakers = f"{prefix}breakers"
        #: hash: the rate limits and breakers a gateway's settings configure (for ``genapi`` commands)
        self.policy_settings = f"{prefix}policy:settings"
        #: hash of runtime settings an operator changed (``detail_error``, ``rate_limits``)
        self.runtime = f"{prefix}runtime"
        #: pull mode: hash service -> last pulled config_version; hash of counters; schedule
        self.pull_versions = f"{prefix}pull:versions"
        self.pull_stats = f"{prefix}pull:stats"
        self.pull_state = f"{prefix}pull:state"
        #: set of services a forced pull asked for (``*``: every configured one)
        self.pull_force = f"{prefix}pull:force"

    def breaker(self, name: str) -> str:
        """A circuit breaker's state: ``failures``, ``opened_until_ms``, ``trial_until_ms``."""
        return f"{self.prefix}breaker:{name}"

    @property
    def rate_limits(self) -> str:
        """The prefix of the rate limiter's buckets (the ``limits`` library's keys)."""
        return f"{self.prefix}ratelimit"

    @property
    def relay_groups(self) -> str:
        """The set of every relay group id."""
        return f"{self.prefix}relay:groups"

    def relay_group(self, group_id: str, part: str = "") -> str:
        """A relay group's hash (type, creator, created) or one of its per-member hashes:
        ``status``, ``roles``, ``conn`` (``<gateway id> <connection id>``), ``joined``. The id
        is braced, and no suffix holds a brace, so no group's keys can be another's."""
        return f"{self.prefix}relay:g:{{{group_id}}}" + (f":{part}" if part else "")

    def relay_alive(self, gateway_id: str) -> str:
        """A gateway process's relay heartbeat (expires when the process dies)."""
        return f"{self.prefix}relay:alive:{gateway_id}"

    def relay_channel(self, gateway_id: str) -> str:
        """Where relay frames for the connections of one gateway process are published."""
        return f"{self.prefix}relay:gw:{gateway_id}"

    def lease(self, name: str) -> str:
        """A short lock that lets one gateway process do shared periodic work."""
        return f"{self.prefix}lease:{name}"

    def push_result(self, push_id: str) -> str:
        """Where a gateway leaves the outcome of one push for the worker to log."""
        return f"{self.prefix}push:result:{push_id}"

    def cancel_channel(self, task_id: str) -> str:
        """Where a gateway tells the worker running a stream to stop."""
        return f"{self.prefix}cancel:{task_id}"

    def cancelled(self, task_id: str) -> str:
        """Set when a call is cancelled, for a worker that has not started it yet."""
        return f"{self.prefix}cancelled:{task_id}"

    def sticky(self, service: str, value: str) -> str:
        """The worker a ``{"sticky": arg}`` value of a service is pinned to."""
        return f"{self.prefix}sticky:{service}:{value}"

    def pull_reply(self, request_id: str) -> str:
        """The list a worker answers one pull request on."""
        return f"{self.prefix}pull:reply:{request_id}"

    def node(self, node_id: str) -> str:
        """String key with the node's info JSON; it expires with the node's heartbeat."""
        return f"{self.prefix}node:{node_id}"

    def reply_channel(self, gateway_id: str) -> str:
        """The pub/sub channel one gateway process listens on for replies."""
        return f"{self.prefix}reply:{gateway_id}"

    @staticmethod
    def function_field(service: str, request_type: str, version: str | None) -> str:
        return f"{service}|{request_type}|{version or ''}"

    @staticmethod
    def parse_field(field: str) -> tuple[str, str, str | None]:
        """``service|request_type|version`` back into its key (an empty version is ``None``)."""
        service, request_type, version = field.split("|", 2)
        return service, request_type, version or None


def service_queue(service: str) -> str:
    """The shared Celery queue of a service: the broker hands each task to a free worker."""
    return f"genapi.{service}"


def direct_queue(node_id: str) -> str:
    """The queue only one worker consumes (Celery ``worker_direct``)."""
    return f"{node_id}.dq2"


# ------------------------------------------------- the task header and worker replies
# The gateway sends each call with a ``genapi`` header (:class:`TaskHeader`); the worker
# publishes reply messages on the header's reply channel. The gateway turns them into the
# client's Response frames, so request ids and the terminal-frame rule stay on its side.
# Every reply names the node that produced it.


@dataclass(frozen=True)
class TaskHeader:
    """What a worker needs to answer one call, carried in the task's ``genapi`` header."""

    #: the gateway process's reply channel; ``None`` for ``response_type="none"``
    reply: str | None
    #: the gateway's correlation id of this attempt (a retry gets a new one)
    ref: str | None
    #: wall-clock time (``time.time()``) after which the answer is useless; ``None``: never
    deadline: float | None
    mode: str = "sync"
    #: the request info (identity and request id) when the function asked for it
    info: dict | None = None
    #: report ``started`` (with the node) first, so the gateway notices a lost worker
    track: bool = False
    #: for ``none`` calls, which nobody re-dispatches: retries the worker makes itself
    retries: int = 0
    #: the client's request id (for the worker's logs and telemetry)
    request_id: Any = None
    #: trace context (W3C ``traceparent``…) when tracing is on
    trace: dict | None = None

    HEADER = "genapi"

    def to_json(self) -> dict:
        data = {"reply": self.reply, "ref": self.ref, "deadline": self.deadline, "mode": self.mode}
        if self.info is not None:
            data["info"] = self.info
        if self.track:
            data["track"] = True
        if self.retries:
            data["retries"] = self.retries
        if self.request_id is not None:
            data["rid"] = self.request_id
        if self.trace:
            data["trace"] = self.trace
        return data

    @classmethod
    def from_json(cls, data: dict) -> TaskHeader:
        return cls(reply=data.get("reply"), ref=data.get("ref"), deadline=data.get("deadline"),
                   mode=data.get("mode", "sync"), info=data.get("info"), track=bool(data.get("track")),
                   retries=int(data.get("retries") or 0), request_id=data.get("rid"), trace=data.get("trace"))


def _reply(kind: str, ref: str, node: str | None, **fields: Any) -> dict:
    return {"ref": ref, "type": kind, "node": node, **fields}


def reply_result(ref: str, result: Any, node: str | None = None) -> dict:
    """The function returned (sync and async calls)."""
    return _reply("result", ref, node, data=result)


def reply_error(ref: str, detail: str, node: str | None = None, unexpected: bool = False) -> dict:
    """The function raised, or a stream ended with an error. ``unexpected``: an exception
    other than ``GenApiError`` (a deliberate error result), which breakers count."""
    if unexpected:
        return _reply("error", ref, node, error=detail, unexpected=True)
    return _reply("error", ref, node, error=detail)


def reply_rejected(ref: str, error: str, node: str | None = None) -> dict:
    """The worker refused the call before running it (a before hook, a permission
    callback); ``error`` is the client's whole message. Never retried, never a breaker
    failure."""
    return _reply("rejected", ref, node, error=error)


def reply_started(ref: str, node_id: str) -> dict:
    """The call started on this worker (sent when the header asks to be tracked)."""
    return _reply("started", ref, node_id)


def reply_chunks(ref: str, chunks: list, node: str | None = None) -> dict:
    """Stream chunks, in order (a worker sends them in batches when they come fast)."""
    return _reply("chunks", ref, node, data=chunks)


def reply_last(ref: str, chunk: Any, node: str | None = None) -> dict:
    """The stream's last chunk: it ends the stream."""
    return _reply("last", ref, node, data=chunk)


def reply_end(ref: str, node: str | None = None) -> dict:
    """The stream ended without a last chunk."""
    return _reply("end", ref, node)
