"""One WebSocket connection: its identity, its outbound queue and writer, the receive loop.

A frame goes to the socket directly only when the socket takes it without waiting;
otherwise it waits in the connection's bounded queue (bytes), drained by the connection's
own writer, so the reply listener and the pipeline never block on a slow socket, and a
client that stops reading holds up nobody else. The queue and the writer thread are made
the first time a frame has to wait: an idle connection, or one whose client keeps up,
has neither (under gevent they cost about 13 KB per connection). When the queue is full:

* a stream chunk that does not fit is refused (the caller ends that stream with an error);
* a terminal frame (a call's answer) may use a small reserve on top of the bound; when even
  that is full, the client is not reading at all, and the connection is closed (1008).
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgpack
from simple_websocket import ConnectionClosed
from wsproto import WSConnection
from wsproto.events import Message
from wsproto.utilities import LocalProtocolError

from workers import signals
from workers.protocol import INTERNAL_ERROR, UNKNOWN_REQUEST_ID, encode, error_frame
from workers.signals import emit

from . import pipeline
from .auth import Identity

if TYPE_CHECKING:
    from .extension import Gateway

log = logging.getLogger("genapi.gateway")

#: bytes of frames a connection may have waiting (non-terminal frames stop here)
QUEUE_BYTES = 8 * 1024 * 1024
#: extra room for terminal frames, so a stream can still be ended with an error
TERMINAL_RESERVE = 256 * 1024
#: how long a close handshake may take before the socket is shut down
CLOSE_GRACE = 2.0
POLICY_VIOLATION = 1008
#: frames the writer sends in one system call at most
WRITE_BATCH = 64
#: asks the writer to send what a direct write left in the socket wrapper
FLUSH = ("", 0)


class _WholeFrames:
    """Wraps a simple-websocket connection's socket so every write is whole and in order.

    simple-websocket writes with ``socket.send``, which may write only part of a frame when
    the socket buffer is full, and drops the rest: the client then sees a corrupt stream
    (a 1002 close). Here each ``send`` is a ``sendall``, under a lock, so its own pings and
    pongs never interleave with our frames either. :meth:`try_send` writes without waiting;
    what the socket did not take stays in ``rest`` and goes out before anything else.
    """

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self.rest = b""
        self._gevent = type(sock).__module__.startswith("gevent")

    def send(self, data: bytes) -> int:
        with self._lock:
            if self.rest:
                self._sock.sendall(self.rest)
                self.rest = b""
            self._sock.sendall(data)
        return len(data)

    sendall = send

    def try_send(self, encode: Callable[[], bytes]) -> bool | None:
        """If nobody is writing and nothing is left over: encode and send without waiting.
        None: busy, nothing encoded (queue it); True: all sent; False: a rest is left."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if self.rest:
                return None
            data = encode()
            try:
                sent = self._sock.send(data, 0, timeout=0.0) if self._gevent else \
                    self._sock.send(data, socket.MSG_DONTWAIT)
            except BlockingIOError:
                sent = 0
            self.rest = data[sent:]
            return not self.rest
        finally:
            self._lock.release()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


#: the WebSocket subprotocols a client may ask for: frames as MessagePack binary frames or as JSON text
MSGPACK_SUBPROTOCOL = "genapi.msgpack"
JSON_SUBPROTOCOL = "genapi.json"
SUBPROTOCOLS = [MSGPACK_SUBPROTOCOL, JSON_SUBPROTOCOL]


class _NoWriter:
    """The writer of a connection that has not needed one yet."""

    @staticmethod
    def is_alive() -> bool:
        return False

    @staticmethod
    def join(timeout: float | None = None) -> None:
        return None


_NO_WRITER = _NoWriter()


def _pack(frame: dict) -> bytes:
    return msgpack.packb(frame, use_bin_type=True)


class Connection:
    """A client connection. ``send`` may be called from any thread; it never blocks."""

    def __init__(self, ws: Any, identity: Identity | None, public: bool, queue_bytes: int = QUEUE_BYTES,
                 address: str | None = None) -> None:
        self.ws = ws
        self.identity = identity
        self.public = public
        #: the client's address (rate limits keyed by ``ip_address``)
        self.address = address
        #: relay groups this connection is attached to (left when it closes)
        self.relay_groups: set[str] = set()
        self.id = uuid.uuid4().hex
        #: MessagePack binary frames both ways (the client asked for the ``genapi.msgpack`` subprotocol)
        self.binary = getattr(ws, "subprotocol", None) == MSGPACK_SUBPROTOCOL
        self.open = True
        #: running async and stream calls by ``deliveries.call_key`` of their request id (cancel)
        self.calls: dict[str, Any] = {}
        self.queue_bytes = queue_bytes
        # frames to write, (text, bytes); None asks the writer to close. The queue and the
        # writer thread are made the first time a frame has to wait (see _post)
        self._outbox: queue.SimpleQueue | None = None
        self._writer: threading.Thread | _NoWriter = _NO_WRITER
        self._finished = False  # the receive loop has ended
        self._queued = 0
        self._dropping = False  # aborted: what is still queued is thrown away
        self._lock = threading.Lock()
        self._close: tuple[int, str] | None = None
        # simple-websocket's own objects, when it is one: frames go out whole, several per write
        self._wire = getattr(ws, "ws", None) if isinstance(getattr(ws, "ws", None), WSConnection) else None
        self._sock: _WholeFrames | None = None
        if self._wire is not None and getattr(ws, "sock", None) is not None:
            self._sock = ws.sock = _WholeFrames(ws.sock)
        self._busy = False  # the writer has frames in hand

    # ------------------------------------------------------------------ sending

    def send(self, frame: dict, *, terminal: bool = True) -> bool:
        """Queue one Response frame; False if the connection is closed or the queue is full.

        A terminal frame that does not fit even in the reserve closes the connection: its
        client has stopped reading. A result that cannot be JSON-encoded becomes an error.
        """
        dump = _pack if self.binary else encode
        try:
            data = dump(frame)
        except (TypeError, ValueError):
            log.exception("response for %r is not JSON serialisable", frame.get("request_id"))
            data = dump(error_frame(frame.get("request_id", UNKNOWN_REQUEST_ID), INTERNAL_ERROR))
        return self._queue(data, terminal)

    def send_text(self, text: str, *, terminal: bool = True) -> bool:
        """Queue one frame already encoded as JSON (a relay frame shared by many connections);
        a MessagePack connection gets it re-encoded."""
        return self._queue(_pack(json.loads(text)) if self.binary else text, terminal)

    def _queue(self, text: str | bytes, terminal: bool) -> bool:
        if isinstance(text, bytes):
            size = len(text)
        else:
            size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        with self._lock:
            if not self.open:
                return False
            idle = not self._busy and not self._queued and self._sock is not None
        if idle:
            # nothing waits before it: write now if the socket takes it without waiting
            # (saves the hand-over to the writer); a rest is the writer's to finish
            try:
                done = self._sock.try_send(lambda: self._wire.send(Message(data=text)))
            except (OSError, LocalProtocolError):  # the client is gone: the receive loop ends it
                with self._lock:
                    self.open = False
                return False
            if done is not None:
                if not done:
                    with self._lock:
                        self._post(FLUSH)
                return True
        with self._lock:
            if not self.open:
                return False
            limit = self.queue_bytes + (TERMINAL_RESERVE if terminal else 0)
            full = bool(self._queued) and self._queued + size > limit
            if not full:
                self._queued += size
                self._post((text, size))
        if full and terminal:
            log.warning("connection %s stopped reading (%d bytes queued); closing it", self.id, self._queued)
            self.abort(POLICY_VIOLATION, "client too slow")
        return not full

    def close(self, code: int, reason: str) -> None:
        """Close after the frames already queued are written (1001: the server is going away)."""
        with self._lock:
            if not self.open:
                return
            self.open = False
            self._close = (code, reason)
            self._post(None)
        self._shutdown_later()

    def abort(self, code: int, reason: str) -> None:
        """Close now, dropping what is queued; shut the socket down if the close handshake
        itself cannot get through (a client that does not read)."""
        with self._lock:
            self.open = False
            self._dropping = True
            self._queued = 0
            self._close = (code, reason)
            self._post(None)
        self._shutdown_later()

    def _shutdown_later(self) -> None:
        timer = threading.Timer(CLOSE_GRACE, self._shutdown_socket)
        timer.daemon = True
        timer.start()

    def _post(self, item: tuple[str | bytes, int] | None) -> None:
        """Hand ``item`` to the writer (the caller holds ``_lock``). The queue and the writer
        thread are made the first time: most connections never need them."""
        if self._outbox is None:
            if self._finished:
                return  # the receive loop is over and nothing waits: no writer to start
            self._outbox = queue.SimpleQueue()
            self._writer = threading.Thread(target=self._write_loop, name=f"genapi-writer-{self.id[:8]}",
                                            daemon=True)
            self._writer.start()
        self._outbox.put(item)

    @property
    def queued_bytes(self) -> int:
        return self._queued

    def _write_loop(self) -> None:
        while True:
            batch, closing = self._take_batch()
            try:
                self._write(batch)
            except (ConnectionClosed, OSError):
                with self._lock:
                    self.open = False
                    self._dropping = True
                    self._queued = 0
                return
            finally:
                with self._lock:
                    self._busy = False
            if closing:
                self._send_close()
                return

    def _take_batch(self) -> tuple[list[str | bytes], bool]:
        """What is queued now (at least one item, waiting for it): texts, and whether a close
        follows them."""
        items = [self._outbox.get()]
        while len(items) < WRITE_BATCH and items[-1] is not None:
            try:
                items.append(self._outbox.get_nowait())
            except queue.Empty:
                break
        closing = items[-1] is None
        frames = [item for item in items if item is not None and item is not FLUSH]
        with self._lock:
            self._busy = True
            if self._dropping:
                return [], closing
            self._queued -= sum(size for _, size in frames)
        return [text for text, _ in frames], closing

    def _write(self, texts: list[str | bytes]) -> None:
        if self._wire is None:  # not simple-websocket (a test double, another server)
            for text in texts:
                self.ws.send(text)
            return
        if not self.ws.connected:
            raise ConnectionClosed(self.ws.close_reason, self.ws.close_message)
        # an empty batch (a flush) still sends what a direct write left over
        self.ws.sock.sendall(b"".join(self._wire.send(Message(data=text)) for text in texts))

    def _send_close(self) -> None:
        code, reason = self._close or (1000, "")
        try:
            self.ws.close(reason=code, message=reason)
        except (ConnectionClosed, OSError):
            pass

    def _shutdown_socket(self) -> None:
        sock = getattr(self.ws, "sock", None)
        if self._writer.is_alive() and sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def finish(self) -> None:
        """The receive loop ended: let the writer go."""
        with self._lock:
            self.open = False
            self._finished = True
            if self._outbox is not None:
                self._outbox.put(None)


def serve(gateway: Gateway, ws: Any, identity: Identity | None, public: bool, address: str | None = None) -> None:
    """Read frames until the client goes away. No exception escapes (flask-sock would write
    an HTTP 500 into the upgraded socket)."""
    conn = Connection(ws, identity, public, gateway.settings.outbound_queue_bytes, address)
    gateway.connections.add(conn)
    opened, requests = time.monotonic(), 0
    user_id = identity.user_id if identity else None
    emit(signals.connection_open, gateway, system_time=time.time_ns(), connection_id=conn.id, user_id=user_id,
         public=public)
    try:
        while conn.open:
            try:
                raw = ws.receive()
            except ConnectionClosed:
                break
            if raw is None:
                continue
            requests += 1
            try:
                pause = pipeline.run(gateway, conn, raw)
                if pause:  # refused "come back later": its next frames wait in the socket a moment
                    time.sleep(pause)
            except Exception:
                log.exception("unexpected error handling a frame")
                conn.send(error_frame(UNKNOWN_REQUEST_ID, INTERNAL_ERROR))
    except Exception:
        log.exception("connection %s failed", conn.id)
    finally:
        gateway.connections.discard(conn)
        gateway.replies.disconnected(conn)
        if conn.relay_groups:
            gateway.relay.disconnected(conn)
        conn.finish()
        emit(signals.connection_close, gateway, duration=time.monotonic() - opened, connection_id=conn.id,
             user_id=user_id, public=public, requests=requests)
