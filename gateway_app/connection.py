"""One WebSocket connection: its identity, a send lock, and the receive loop."""

from __future__ import annotations

import logging
import threading
import uuid
from typing import TYPE_CHECKING, Any

from simple_websocket import ConnectionClosed

from workers.protocol import INTERNAL_ERROR, UNKNOWN_REQUEST_ID, encode, error_frame

from . import pipeline
from .auth import Identity

if TYPE_CHECKING:
    from .extension import Gateway

log = logging.getLogger("genapi.gateway")


class Connection:
    """A client connection. Frames may be sent from any greenlet; sends are serialised."""

    def __init__(self, ws: Any, identity: Identity | None, public: bool) -> None:
        self.ws = ws
        self.identity = identity
        self.public = public
        self.id = uuid.uuid4().hex
        self.open = True
        self._lock = threading.Lock()

    def close(self, code: int, reason: str) -> None:
        """Close the socket with a WebSocket close code (1001: the server is going away)."""
        if not self.open:
            return
        self.open = False
        try:
            with self._lock:
                self.ws.close(reason=code, message=reason)
        except (ConnectionClosed, OSError):
            pass

    def send(self, frame: dict) -> None:
        """Send one Response frame; a result that cannot be JSON-encoded becomes an error."""
        try:
            text = encode(frame)
        except (TypeError, ValueError):
            log.exception("response for %r is not JSON serialisable", frame.get("request_id"))
            text = encode(error_frame(frame.get("request_id", UNKNOWN_REQUEST_ID), INTERNAL_ERROR))
        if not self.open:
            return
        try:
            with self._lock:
                self.ws.send(text)
        except (ConnectionClosed, OSError):
            self.open = False


def serve(gateway: Gateway, ws: Any, identity: Identity | None, public: bool) -> None:
    """Read frames until the client goes away. No exception escapes (flask-sock would write
    an HTTP 500 into the upgraded socket)."""
    conn = Connection(ws, identity, public)
    gateway.connections.add(conn)
    try:
        while conn.open:
            try:
                raw = ws.receive()
            except ConnectionClosed:
                break
            if raw is None:
                continue
            try:
                pipeline.run(gateway, conn, raw)
            except Exception:
                log.exception("unexpected error handling a frame")
                conn.send(error_frame(UNKNOWN_REQUEST_ID, INTERNAL_ERROR))
    except Exception:
        log.exception("connection %s failed", conn.id)
    finally:
        conn.open = False
        gateway.connections.discard(conn)
        gateway.deliveries.drop_connection(conn)
