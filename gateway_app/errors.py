"""``Rejected``: how a step answers a request with an error frame, and the ways it does.

Every rejection carries the catalogue's message (what the client reads) and a stable
``code`` (what metrics, logs and retry-after logic key on). The constructors below are the
only places those pairs are written.
"""

from __future__ import annotations

import json

from workers.protocol import (
    AUTH_REQUIRED,
    INTERNAL_ERROR,
    PERMISSION_DENIED,
    RATE_LIMIT_UNAVAILABLE,
    UNAVAILABLE,
    disabled_function,
    invalid_arguments,
    invalid_request,
    rate_limited,
    unsupported_function,
)


class Rejected(Exception):
    """Stop the pipeline and answer the request with ``error`` (a catalogue string)."""

    def __init__(self, error: str, can_retry: bool = False, *, code: str) -> None:
        super().__init__(error)
        self.error = error
        self.can_retry = can_retry
        self.code = code


def auth_required() -> Rejected:
    return Rejected(AUTH_REQUIRED, code="auth_required")


def invalid(detail: str) -> Rejected:
    return Rejected(invalid_request(detail), code="invalid_request")


def unsupported(request_type: str, version: str | None) -> Rejected:
    return Rejected(unsupported_function(request_type, version), code="unsupported_function")


def disabled(request_type: str, version: str) -> Rejected:
    return Rejected(disabled_function(request_type, version), code="disabled_function")


def permission_denied() -> Rejected:
    return Rejected(PERMISSION_DENIED, code="permission_denied")


def too_many_requests(retry_after_s: int) -> Rejected:
    return Rejected(rate_limited(retry_after_s), can_retry=True, code="rate_limited")


def rate_limiter_down() -> Rejected:
    """The limiter's Redis did not answer and ``fail_open`` is off."""
    return Rejected(RATE_LIMIT_UNAVAILABLE, can_retry=True, code="rate_limiter_unavailable")


def hook_rejected(message: str) -> Rejected:
    """A gateway-level before hook refused the call (``message`` is the whole error)."""
    return Rejected(message, code="hook_rejected")


def bad_arguments(detail: str) -> Rejected:
    return Rejected(invalid_arguments(detail), code="invalid_arguments")


def unavailable(code: str) -> Rejected:
    """``Service temporarily unavailable`` (``can_retry``), for a reason named by ``code``:
    ``no_live_worker``, ``draining``, ``no_reply_subscription``, ``broker_unavailable``…"""
    return Rejected(UNAVAILABLE, can_retry=True, code=code)


def selection_failed() -> Rejected:
    """A custom node selector raised or chose a worker that is not live (reference §4.1)."""
    return Rejected(INTERNAL_ERROR, code="node_selection_failed")


def nothing_to_cancel(request_id: object) -> Rejected:
    shown = json.dumps(request_id, sort_keys=True, default=str)
    return Rejected(invalid_request(f"no running async or stream request {shown} on this connection"),
                    code="nothing_to_cancel")
