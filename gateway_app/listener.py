"""The one pub/sub subscription of a gateway process.

It listens on the process's reply channel (worker replies) and on the registry events
channel (tell the cache to refresh); :meth:`Listener.subscribe` adds channels at runtime
(relay groups). Never one subscription per WebSocket: redis-py caps a pool at 100
connections. If Redis drops the subscription it reconnects with backoff, subscribes to
every channel again, and asks for a full refresh, since notifications may have been missed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis

log = logging.getLogger("genapi.gateway")


class Listener:
    """Dispatches pub/sub messages by channel to in-process handlers."""

    def __init__(self, client: redis.Redis, handlers: dict[str, Callable[[bytes], None]],
                 on_reconnect: Callable[[], None]) -> None:
        self.client = client
        self.handlers = {name.encode(): handler for name, handler in handlers.items()}
        self.on_reconnect = on_reconnect
        self._stop = threading.Event()
        self._pubsub = None
        #: subscription changes asked for from other threads, applied by the listener's own
        self._changes: list[tuple[str, bytes]] = []
        self._changes_lock = threading.Lock()
        #: set while subscribed: replies published meanwhile are received
        self.connected = threading.Event()

    def run(self) -> None:
        backoff = 0.1
        first = True
        while not self._stop.is_set():
            try:
                self._pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                self._notice_silent_reconnects(self._pubsub)
                with self._changes_lock:
                    self._changes.clear()  # every current channel is subscribed below
                    channels = list(self.handlers)
                self._pubsub.subscribe(*channels)
                self.connected.set()
                if not first:
                    self.on_reconnect()
                first = False
                backoff = 0.1
                self._consume()
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                if self._stop.is_set():
                    break
                log.warning("reply listener lost Redis (%s); reconnecting in %.1fs", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 1.0)
            finally:
                self.connected.clear()
                self._close()

    def _notice_silent_reconnects(self, pubsub) -> None:
        """redis-py reconnects a dropped subscription by itself (and subscribes again), so the
        loop above never sees the error; messages published meanwhile were still missed."""
        self._reconnects = _Reconnects(pubsub.on_connect, self.on_reconnect)  # held: redis-py keeps a weakref
        pubsub.on_connect = self._reconnects.on_connect

    def subscribe(self, channel: str, handler: Callable[[bytes], None]) -> None:
        """Deliver ``channel``'s messages to ``handler`` from now on (also after reconnects)."""
        name = channel.encode()
        with self._changes_lock:
            self.handlers[name] = handler
            self._changes.append(("subscribe", name))

    def unsubscribe(self, channel: str) -> None:
        name = channel.encode()
        with self._changes_lock:
            self.handlers.pop(name, None)
            self._changes.append(("unsubscribe", name))

    def _apply_changes(self) -> None:
        with self._changes_lock:
            changes, self._changes = self._changes, []
        for action, name in changes:
            getattr(self._pubsub, action)(name)

    def _consume(self) -> None:
        while not self._stop.is_set():
            if self._changes:
                self._apply_changes()
            message = self._pubsub.get_message(timeout=0.25)
            if message is None or message["type"] != "message":
                continue
            handler = self.handlers.get(message["channel"])
            if handler is None:
                continue  # unsubscribed meanwhile
            try:
                handler(message["data"])
            except Exception:
                log.exception("error handling a message on %s", message["channel"])

    def _close(self) -> None:
        if self._pubsub is not None:
            try:
                self._pubsub.close()
            except Exception:  # closing a broken connection may raise anything
                pass
            self._pubsub = None

    def stop(self) -> None:
        self._stop.set()


class _Reconnects:
    """Wraps a PubSub's ``on_connect`` (which redis-py calls on reconnects only)."""

    def __init__(self, resubscribe: Callable, notify: Callable[[], None]) -> None:
        self.resubscribe = resubscribe
        self.notify = notify

    def on_connect(self, connection) -> None:
        self.resubscribe(connection)
        log.warning("reply listener reconnected to Redis; reloading the registry")
        self.notify()
