"""Typed errors of the Python client: one class per kind of ``error`` string of the wire protocol.

The strings themselves are the gateway's (``docs/protocol.md``, "Errors"); this module only
sorts them into classes, so a caller can write ``except RateLimited`` instead of comparing
text. It does not import the server-side packages: the client must install and import
without Flask or Celery.
"""

from __future__ import annotations

from typing import Any


class GenApiCallError(Exception):
    """A call ended with an error frame (or never got its answer).

    ``error`` is the frame's error string, exactly as the gateway sent it; ``can_retry`` says
    whether the same request may succeed later; ``request_id`` is the id the client sent
    (``None`` when nothing was sent); ``frame`` is the whole error frame, when there was one.
    """

    def __init__(self, error: str, can_retry: bool = False, request_id: Any = None, frame: dict | None = None):
        super().__init__(error)
        self.error = error
        self.can_retry = can_retry
        self.request_id = request_id
        self.frame = frame

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.error!r}, can_retry={self.can_retry}, request_id={self.request_id!r})"


class AuthenticationRequired(GenApiCallError):
    """The connection has no identity: a missing, forged or expired token."""


class BadRequest(GenApiCallError):
    """``Invalid request: ...``: the gateway could not read the request (or a bad ``cancel``)."""


class UnsupportedFunction(GenApiCallError):
    """``unsupported function: ...`` or ``disabled function: ...``: no such function or version."""


class PermissionDenied(GenApiCallError):
    """``Permission denied``."""


class RateLimited(GenApiCallError):
    """``Rate limit exceeded. Please retry after <S> seconds.`` (or the limiter is down)."""


class InvalidArguments(GenApiCallError):
    """``Invalid arguments: <detail>``, from the gateway or found by the client before sending."""


class HookRejected(GenApiCallError):
    """``hook rejected: "<reason>"``: a before hook refused the call."""


class Unavailable(GenApiCallError):
    """``Service temporarily unavailable``: no live worker, open breaker, gateway draining."""


class TimedOut(GenApiCallError):
    """``Request timed out``: from the gateway, or no answer within the client's own timeout."""


class InternalServerError(GenApiCallError):
    """``Internal Server Error``: the function raised (``: <detail>`` with detail errors on)."""


class Cancelled(GenApiCallError):
    """``Request cancelled``: an async call stopped with ``gateway/cancel``."""


class ClientTooSlow(GenApiCallError):
    """``Client too slow: ...``: a stream chunk did not fit in the connection's outbound queue."""


class RelayError(GenApiCallError):
    """A relay request was refused: ``Group not found``, ``Not a member of this group``, ..."""


class ConnectionLost(GenApiCallError):
    """The WebSocket closed while the call was in flight, or is down: ``can_retry`` is true."""

    def __init__(self, error: str = "Connection lost", request_id: Any = None):
        super().__init__(error, can_retry=True, request_id=request_id)


class ConnectFailed(ConnectionLost):
    """The client could not open the WebSocket (refused, handshake failed, timed out)."""


_EXACT: dict[str, type[GenApiCallError]] = {
    "Authentication required": AuthenticationRequired,
    "Permission denied": PermissionDenied,
    "Service temporarily unavailable": Unavailable,
    "Request timed out": TimedOut,
    "Request cancelled": Cancelled,
    "Rate limit service unavailable": RateLimited,
}

_PREFIXES: tuple[tuple[str, type[GenApiCallError]], ...] = (
    ("Invalid request:", BadRequest),
    ("Invalid arguments:", InvalidArguments),
    ("unsupported function:", UnsupportedFunction),
    ("disabled function:", UnsupportedFunction),
    ("Rate limit exceeded", RateLimited),
    ("hook rejected:", HookRejected),
    ("Internal Server Error", InternalServerError),
    ("Client too slow", ClientTooSlow),
)

_RELAY = frozenset({
    "Group not found", "Not a member of this group", "Pending membership: wait for acceptance",
    "You are muted and cannot send messages", "Group already exists", "Already a member of this group",
    "Not a group admin", "User is not a member of this group", "User is not pending",
    "Only strict_private groups can mute members", "Only active members can be muted", "User is not muted",
})


def error_class(error: str) -> type[GenApiCallError]:
    """The class of an ``error`` string; :class:`GenApiCallError` itself for one it does not know."""
    if error in _EXACT:
        return _EXACT[error]
    if error in _RELAY or error.startswith("Too many groups on this connection"):
        return RelayError
    for prefix, cls in _PREFIXES:
        if error.startswith(prefix):
            return cls
    return GenApiCallError


def from_frame(frame: dict) -> GenApiCallError:
    """The typed error of an error frame."""
    error = frame.get("error")
    text = error if isinstance(error, str) else "Unknown error"
    return error_class(text)(text, bool(frame.get("can_retry")), frame.get("request_id"), frame)
