"""Retry (reference §7), written entirely as an after-call hook.

``retry``: ``n`` (= ``{"all_nodes": n}``), ``{"same_node": n}`` or ``{"all_nodes": n}``:
up to ``1 + n`` attempts. Retried: an error result (a ``GenApiError`` or any exception the
function raised) and a lost worker. Never retried: everything refused before dispatch
(validation, permission, rate limits — those calls never reach the hook), the client's own
timeout, a cancel, a disconnect. Between attempts the original's backoff: the first retry
waits longest (≈ 100·2^(n−1) ms, capped at 5 s, ±50 % jitter). ``all_nodes`` prefers a
worker other than the one that failed; ``same_node`` goes back to it while it lives. Every
attempt must still fit in the call's ``timeout``: there is one deadline for the whole call.
A stream is retried only before its first chunk reached the client (else the client would
get the chunks twice).

``none`` calls are never heard of again after dispatch; their worker retries them itself
(:func:`workers.runtime.run_call`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from workers.backoff import backoff_ms
from workers.signals import emit, executor_retry, executor_retry_exhausted

from .deliveries import Pending

if TYPE_CHECKING:
    from .extension import Gateway
    from .replies import Outcome

log = logging.getLogger("genapi.gateway")

RETRYABLE = frozenset({"error", "lost"})


def policy(retry: Any) -> tuple[str, int] | None:
    """``(mode, n)`` from a FunConfig's ``retry`` (floats truncated), or ``None``."""
    if retry is None:
        return None
    if isinstance(retry, dict):
        (mode, n), = retry.items()
        return mode, int(n)
    return "all_nodes", int(retry)


class Retry:
    """The after-call hook that re-dispatches failed attempts."""

    def after_call(self, gateway: Gateway, pending: Pending, outcome: Outcome) -> bool:
        rule = policy(pending.config.retry) if pending.config is not None else None
        if outcome.kind not in RETRYABLE or rule is None or rule[1] <= 0:
            return False
        mode, n = rule
        remaining = n - pending.retries
        config = pending.config
        if remaining <= 0:
            log.warning("%s: request %r failed after %d attempts (retry exhausted, last: %s %s)",
                        pending.task, pending.request_id, 1 + n, outcome.kind, outcome.error or "")
            if executor_retry_exhausted.receivers:
                emit(executor_retry_exhausted, gateway, request_id=pending.request_id, service=config.service,
                     request_type=config.request_type, mode=mode,
                     last_error=f"{outcome.kind}: {outcome.error or ''}")
            return False
        delay = backoff_ms(remaining) / 1000
        if pending.deadline is not None and time.monotonic() + delay >= pending.deadline:
            return False  # no time left for another attempt: this outcome stands
        if not pending.conn.open:
            return False
        if pending.delivered:
            return False  # the client has chunks of this attempt: another would send them again
        failed_on = outcome.node or pending.node
        pending.retries += 1
        log.info("%s: request %r %s on %s; attempt %d of %d in %d ms", pending.task, pending.request_id,
                 outcome.kind, failed_on or "a worker", pending.retries + 1, 1 + n, delay * 1000)
        if executor_retry.receivers:
            emit(executor_retry, gateway, attempt=remaining, backoff=delay, request_id=pending.request_id,
                 service=config.service, request_type=config.request_type, mode=mode, type="remote",
                 nodes=[failed_on] if failed_on else [])
        gateway.replies.retry_later(pending, delay, same=failed_on if mode == "same_node" else None,
                                    avoid={failed_on} if failed_on and mode == "all_nodes" else set())
        return True
