"""Streams on the worker: a generator's chunks, or a handle's, published in order.

A ``response_type="stream"`` function is usually a generator: each ``yield`` is a chunk, a
non-``None`` ``return`` value is the last chunk, an exception ends the stream with an
error. A producer that is not a generator (callbacks, threads) takes
``request_info=True`` and drives ``request_info["stream"]``, a :class:`StreamHandle`::

    @api.function("ticks", response_type="stream", request_info=True, timeout=60000)
    def ticks(request_info):
        stream = request_info["stream"]
        start_feed(on_tick=stream.send_result, on_done=stream.complete, on_fail=stream.error)

The handle queues chunks for a sender thread, which publishes whatever has accumulated as
one message: a slow producer's chunks go out one by one at once, a fast producer's in
batches. A cancel (the client's ``gateway.cancel``, or its disconnect) or the deadline stops
a generator at its next ``yield`` (``close()``, so its ``finally`` runs); a handle reports
``cancelled`` and ignores further sends.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Generator
from typing import Any

import redis

from .errors import GenApiError
from .protocol import encode, reply_chunks, reply_end, reply_error, reply_last

log = logging.getLogger("genapi.worker")

#: chunks waiting to be published before ``send_result`` blocks (backpressure)
QUEUE_LIMIT = 1024
#: most chunks in one published message (bounds its size)
BATCH_LIMIT = 256
_TERMINAL = ("last", "end", "error")


class CancelWatcher:
    """Subscribes to the call's cancel channel and sets ``event`` when a cancel arrives."""

    def __init__(self, client: redis.Redis, channel: str, event: threading.Event) -> None:
        self.event = event
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(channel)  # before the caller checks for an earlier cancel
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="genapi-cancel", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        try:
            while not self._done.is_set() and not self.event.is_set():
                if self._pubsub.get_message(timeout=0.2) is not None:
                    self.event.set()
        except (redis.RedisError, OSError, ValueError):
            pass  # closed under us, or Redis gone: the deadline still ends the stream
        finally:
            try:
                self._pubsub.close()
            except Exception:  # closing a broken connection may raise anything
                pass

    def stop(self) -> None:
        self._done.set()


class StreamHandle:
    """Sends one stream's chunks and its single end; safe to call from any thread."""

    def __init__(self, publish, ref: str, node: str | None, deadline: float | None,
                 cancel: threading.Event | None = None) -> None:
        self._publish = publish  # callable(payload: str) -> None, one PUBLISH of encoded JSON
        self.ref = ref
        self.node = node
        self.deadline = deadline
        self._cancel = cancel or threading.Event()
        self._queue: queue.Queue = queue.Queue(QUEUE_LIMIT)
        self._lock = threading.Lock()
        self._ended = False
        self._end_kind: str | None = None
        #: (error, unexpected) when the stream ended with an error
        self.failure: tuple[str, bool] | None = None
        self.finished = threading.Event()
        self._sender = threading.Thread(target=self._send_loop, name="genapi-stream", daemon=True)
        self._sender.start()

    # ------------------------------------------------------------------ producer side

    @property
    def cancelled(self) -> bool:
        """The client cancelled (or left), or the deadline passed: stop producing."""
        return self._cancel.is_set() or (self.deadline is not None and time.time() > self.deadline)

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def outcome(self) -> str:
        """How the stream ended: ``last``, ``end``, ``error``, ``cancelled`` or ``timeout``."""
        if self._end_kind is not None:
            return self._end_kind
        return "cancelled" if self._cancel.is_set() else "timeout" if self.cancelled else "ended"

    def send_result(self, chunk: Any) -> bool:
        """Queue one chunk; returns False once the stream is over (nothing is sent then)."""
        return self._put(("chunk", chunk))

    def send_last_result(self, chunk: Any) -> bool:
        """Queue the last chunk: it ends the stream."""
        return self._end(("last", chunk))

    def complete(self) -> bool:
        """End the stream without a last chunk."""
        return self._end(("end", None))

    def error(self, reason: Any, unexpected: bool = False) -> bool:
        """End the stream with an error (``Internal Server Error``, with detail if enabled).
        ``unexpected``: it comes from an exception the function did not mean to raise
        (the gateway's breakers count those; a deliberate error they do not)."""
        ended = self._end(("error", (str(reason), unexpected)))
        if ended:
            self.failure = (str(reason), unexpected)
        return ended

    def _end(self, item: tuple) -> bool:
        with self._lock:
            if self._ended:
                return False
            self._ended = True
            self._end_kind = item[0]
        self._queue.put(item)  # the end always gets through, even after a cancel
        return True

    def _put(self, item: tuple) -> bool:
        if self._ended or self.cancelled:
            return False
        while True:
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                if self.cancelled:
                    return False

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the end has been published (or ``timeout``)."""
        return self.finished.wait(timeout)

    # ------------------------------------------------------------------ sender thread

    def _send_loop(self) -> None:
        try:
            while True:
                try:
                    batch = [self._queue.get(timeout=0.2)]
                except queue.Empty:
                    if self.cancelled:
                        return  # nobody waits for this stream any more, and no end is coming
                    continue
                while len(batch) < BATCH_LIMIT and batch[-1][0] == "chunk":
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                end = batch.pop() if batch[-1][0] in _TERMINAL else None
                if batch and not self.cancelled and not self._publish_chunks([data for _, data in batch]):
                    return
                if end is not None:
                    self._publish_end(end)
                    return
        except (redis.RedisError, OSError):
            log.exception("stream %s: could not publish; the gateway times the call out", self.ref)
        finally:
            self._ended = True
            self.finished.set()

    def _publish_chunks(self, chunks: list) -> bool:
        """Publish a batch; a chunk that is not JSON ends the stream with an error, after the
        good chunks before it."""
        try:
            self._publish(encode(reply_chunks(self.ref, chunks, self.node)))
            return True
        except (TypeError, ValueError):
            pass
        for index, chunk in enumerate(chunks):
            try:
                encode(chunk)
            except (TypeError, ValueError):
                if index:
                    self._publish(encode(reply_chunks(self.ref, chunks[:index], self.node)))
                return self._publish_message(reply_chunks(self.ref, [chunk], self.node))
        return True

    def _publish_end(self, item: tuple) -> None:
        kind, data = item
        if kind == "last":
            self._publish_message(reply_last(self.ref, data, self.node))
        elif kind == "end":
            self._publish_message(reply_end(self.ref, self.node))
        else:
            reason, unexpected = data
            self._publish_message(reply_error(self.ref, reason, self.node, unexpected))

    def _publish_message(self, message: dict) -> bool:
        try:
            payload = encode(message)
        except (TypeError, ValueError) as exc:
            self._publish(encode(reply_error(self.ref, f"stream chunk is not JSON serialisable: {exc}", self.node,
                                             unexpected=True)))
            return False
        self._publish(payload)
        return True


def pump(generator: Generator, handle: StreamHandle, describe) -> None:
    """Drive a generator function's generator into the handle until it ends, fails, is
    cancelled or outlives its deadline (then it is closed: its ``finally`` runs)."""
    try:
        while True:
            if handle.cancelled or handle.ended:
                generator.close()
                return
            try:
                chunk = next(generator)
            except StopIteration as stop:
                if stop.value is not None:
                    handle.send_last_result(stop.value)
                else:
                    handle.complete()
                return
            handle.send_result(chunk)
    except GenApiError as exc:
        handle.error(describe(exc))
    except Exception as exc:
        log.exception("stream %s raised", handle.ref)
        handle.error(describe(exc), unexpected=True)
