"""The asyncio client: one WebSocket, many calls in flight, reconnects with backoff.

One reader task routes every frame by ``request_id`` to the call waiting for it; frames of no
call in flight that carry a relay message go to the relay queue. :class:`gateway_app.client.Client`
runs this same engine on a private event-loop thread.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Mapping
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from . import wire
from .calls import Call, Event
from .errors import ConnectFailed, ConnectionLost, InvalidArguments, TimedOut
from .proxies import AsyncServices, Catalogue
from .relay import CLOSED, RelayMethods
from .schema import SchemaError, check_args
from .streams import AsyncStream

log = logging.getLogger("gateway_app.client")


class AsyncClient(RelayMethods):
    """A client of the gateway for asyncio code.

    ``url`` is the WebSocket endpoint; ``token`` (from ``genapi token``) is appended as
    ``?token=``. ``encoding="msgpack"`` exchanges MessagePack binary frames (subprotocol
    ``genapi.msgpack``). ``timeout`` is the default number of seconds a call waits for its
    answer (and for a connection). With ``reconnect`` a dropped socket is opened again in the
    background, with exponential backoff and jitter capped at ``max_backoff`` seconds; calls in
    flight at the drop fail with :class:`ConnectionLost` (``can_retry`` true) and later calls
    wait for the new socket. The first connection is tried once, on :meth:`connect` or the
    first call. ``relay_buffer`` bounds the relay messages kept until read (the oldest go).
    """

    def __init__(self, url: str = wire.DEFAULT_URL, token: str | None = None, *, encoding: str = "json",
                 timeout: float = 30.0, reconnect: bool = True, max_backoff: float = 10.0,
                 relay_buffer: int = 10000) -> None:
        if encoding not in wire.ENCODINGS:
            raise ValueError(f"encoding must be one of {', '.join(wire.ENCODINGS)}, got {encoding!r}")
        self.url = url
        self.encoding = encoding
        self.timeout = timeout
        self.reconnect = reconnect
        self.max_backoff = max_backoff
        self._token = token
        self._pending: dict[str, Call] = {}
        self._ws: ClientConnection | None = None
        self._up = asyncio.Event()
        self._first: asyncio.Future | None = None
        self._ever_connected = False
        self._closed = False
        self._last_error = "not connected yet"
        self._tasks: set[asyncio.Task] = set()
        self._relay: asyncio.Queue = asyncio.Queue(maxsize=max(1, relay_buffer))
        self._groups: set[str] = set()
        self._catalogue: Catalogue | None = None
        #: ``await client.services.<service>.<request_type>(**args)``: proxies from the catalogue
        self.services = AsyncServices(self)

    # ------------------------------------------------------------------ connection

    @property
    def connected(self) -> bool:
        """The WebSocket is open right now."""
        return self._ws is not None

    async def connect(self) -> AsyncClient:
        """Open the WebSocket now (calls open it on demand). Raises :class:`ConnectFailed`."""
        await self._connection(self.timeout)
        return self

    async def __aenter__(self) -> AsyncClient:
        return await self.connect()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the WebSocket; calls in flight fail with :class:`ConnectionLost`."""
        if self._closed:
            return
        self._closed = True
        ws = self._ws
        if ws is not None:
            await ws.close()
            self._lost(ws)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._fail_pending("the client was closed")
        self._relay_put(CLOSED)

    async def _connection(self, timeout: float) -> ClientConnection:
        """The open WebSocket; opens the first one, or waits (at most ``timeout``) for a reconnect."""
        if self._closed:
            raise RuntimeError("the client is closed")
        if self._ws is not None:
            return self._ws
        if not self._ever_connected:
            if self._first is None:
                self._first = asyncio.ensure_future(self._open())
                self._first.add_done_callback(self._first_done)
            await asyncio.shield(self._first)
        elif not self.reconnect:
            raise ConnectionLost(f"Connection lost ({self._last_error}); reconnect is off")
        else:
            try:
                async with asyncio.timeout(timeout):
                    await self._up.wait()
            except TimeoutError:
                raise ConnectFailed(f"not reconnected to {self.url} within {timeout:g} s: {self._last_error}") \
                    from None
        if self._ws is None:  # dropped again before this caller ran
            return await self._connection(timeout)
        return self._ws

    def _first_done(self, future: asyncio.Future) -> None:
        if future.cancelled() or future.exception() is not None:
            self._first = None  # the next call tries again

    async def _open(self) -> None:
        subprotocols = [wire.MSGPACK_SUBPROTOCOL] if self.encoding == "msgpack" else None
        try:
            ws = await connect(wire.ws_url(self.url, self._token), subprotocols=subprotocols,
                               open_timeout=self.timeout, max_size=None)
        except (OSError, TimeoutError, WebSocketException) as exc:
            self._last_error = self._describe(exc)
            raise ConnectFailed(f"cannot connect to {self.url}: {self._last_error}") from None
        if self.encoding == "msgpack" and ws.subprotocol != wire.MSGPACK_SUBPROTOCOL:
            await ws.close()
            self._last_error = "the gateway does not offer the genapi.msgpack subprotocol"
            raise ConnectFailed(f"cannot use MessagePack with {self.url}: {self._last_error}")
        if self._closed:
            await ws.close()
            raise RuntimeError("the client is closed")
        self._ws = ws
        self._ever_connected = True
        self._up.set()
        self._spawn(self._read(ws))

    def _describe(self, exc: BaseException) -> str:
        text = str(exc) or type(exc).__name__
        return text.replace(self._token, "<token>") if self._token else text

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for data in ws:
                self._route(data)
        except ConnectionClosed:
            pass
        finally:
            self._lost(ws)

    def _lost(self, ws: ClientConnection) -> None:
        if self._ws is not ws:
            return
        self._ws = None
        self._up.clear()
        code = ws.close_code
        self._last_error = f"closed with code {code}" + (f" ({ws.close_reason})" if ws.close_reason else "") \
            if code is not None else "the connection dropped"
        self._fail_pending(self._last_error)
        if not self._closed and self.reconnect:
            self._spawn(self._reconnect())

    def _fail_pending(self, why: str) -> None:
        pending, self._pending = self._pending, {}
        for call in pending.values():
            call.fail(ConnectionLost(f"Connection lost: {why}", call.request_id))

    async def _reconnect(self) -> None:
        attempt = 0
        while not self._closed:
            delay = min(self.max_backoff, 0.1 * 2 ** min(attempt, 20))
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            try:
                await self._open()
            except ConnectFailed as exc:
                attempt += 1
                log.info("reconnect attempt %d failed: %s", attempt, exc.error)
                continue
            log.info("reconnected to %s after %d failed attempts", self.url, attempt)
            for group_id in list(self._groups):
                self._spawn(self._rejoin(group_id))
            return

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ frames

    def _route(self, data: str | bytes) -> None:
        try:
            frame = wire.decode(data)
        except ValueError as exc:
            log.warning("ignoring a frame that could not be decoded: %s", exc)
            return
        if not isinstance(frame, dict):
            return
        request_id = frame.get("request_id")
        call = self._pending.get(request_id) if isinstance(request_id, str) else None
        if call is not None:
            was_open = call.opened
            if call.feed(frame):
                self._pending.pop(request_id, None)
            elif call.abandoned and call.opened and not was_open:
                self._cancel_quietly(call)  # given up on before it was acked: stop it now
            return
        message = wire.relay_message(frame)
        if message is not None:
            self._relay_put(message)
        else:
            log.debug("dropping a frame for no call in flight (request id %r)", request_id)

    async def _start(self, service: str, request_type: str, args: Mapping | None, version: str | None,
                     timeout: float, *, quiet: bool = False, register: bool = True) -> Call:
        if args is not None and not isinstance(args, Mapping):
            raise TypeError(f"args must be a mapping of argument names to values, got {type(args).__name__}")
        request_id = uuid.uuid4().hex
        frame = wire.request(service, request_type, request_id, wire.plain(args or {}), version)
        data = wire.encode(frame, self.encoding)
        ws = await self._connection(timeout)
        call = Call(request_id, frame)
        call.abandoned = quiet
        if register:
            self._pending[request_id] = call
        try:
            await ws.send(data)
        except ConnectionClosed:
            self._pending.pop(request_id, None)
            raise ConnectionLost("Connection lost while sending the request", request_id) from None
        return call

    async def _next(self, call: Call, timeout: float | None, shown: float | None = None) -> Event:
        """The call's next event; on a timeout the call is abandoned and :class:`TimedOut` raised
        (its message names ``shown`` seconds, default ``timeout``)."""
        try:
            async with asyncio.timeout(timeout):
                return await call.events.get()
        except TimeoutError:
            self._abandon(call)
            shown = timeout if shown is None else shown
            raise TimedOut(f"Request timed out (no answer within {shown:g} s)", True, call.request_id) from None
        except asyncio.CancelledError:
            self._abandon(call)
            raise

    def _abandon(self, call: Call) -> None:
        """The caller gave up on ``call``: drop its frames; cancel it once it runs."""
        if call.abandoned or call.finished.is_set():
            return
        call.abandoned = True
        if call.opened:
            self._cancel_quietly(call)

    def _cancel_quietly(self, call: Call) -> None:
        async def cancel() -> None:
            try:
                await self._start("gateway", "cancel", {"request_id": call.request_id}, None, self.timeout,
                                  quiet=True)
            except (ConnectionLost, RuntimeError):
                pass  # the connection (and with it the call) is gone anyway

        if self._ws is not None and not call.finished.is_set():
            self._spawn(cancel())

    # ------------------------------------------------------------------ calls

    async def call(self, service: str, request_type: str, args: Mapping | None = None, version: str | None = None,
                   timeout: float | None = None) -> Any:
        """Call a function and return its result, or raise a :class:`GenApiCallError`.

        Sync and async functions return their result (an async call waits past its ack).
        A stream function's chunks are collected and returned as a list when the stream
        ends; use :meth:`stream` to handle them as they arrive. ``timeout`` (seconds, default
        the client's) bounds the whole call; when it passes, :class:`TimedOut` is raised and
        a running async call or stream is cancelled. Never use it for a ``none`` function,
        which answers nothing: see :meth:`notify`."""
        timeout = self.timeout if timeout is None else timeout
        deadline = asyncio.get_running_loop().time() + timeout
        call = await self._start(service, request_type, args, version, timeout)
        chunks = []
        while True:
            left = max(0.0, deadline - asyncio.get_running_loop().time())
            event = await self._next(call, left, timeout)
            if event.kind == "chunk":
                chunks.append(event.value)
            elif event.kind == "result":
                return event.value
            elif event.kind == "end":
                return chunks
            else:
                raise event.value

    def call_async(self, service: str, request_type: str, args: Mapping | None = None, version: str | None = None,
                   timeout: float | None = None) -> asyncio.Task:
        """:meth:`call` as a task, to await later. Cancelling the task cancels the call."""
        return asyncio.ensure_future(self.call(service, request_type, args, version, timeout))

    def stream(self, service: str, request_type: str, args: Mapping | None = None, version: str | None = None,
               timeout: float | None = None) -> AsyncStream:
        """An async iterator of a stream's chunk results, ending on its terminal frame.

        The request is sent on the first iteration (or ``await stream.start()``). An error
        frame raises its :class:`GenApiCallError`. Leaving early (``break``, ``aclose()``, the
        iterator going away) sends ``gateway/cancel``, which stops the producer. ``timeout``
        bounds the wait for each frame (default: no bound, the function's own timeout ends
        the stream). A sync or async function yields its one result."""
        return AsyncStream(self, service, request_type, args, version, timeout)

    async def notify(self, service: str, request_type: str, args: Mapping | None = None, version: str | None = None,
                     wait: float = 0.0) -> str:
        """Send a call without waiting for an answer (``response_type="none"``); returns its
        request id. With ``wait`` > 0 an error answered within ``wait`` seconds is raised (the
        gateway answers errors found before dispatch, such as bad arguments, in every mode)."""
        call = await self._start(service, request_type, args, version, self.timeout, register=wait > 0)
        if wait <= 0:
            return call.request_id
        try:
            async with asyncio.timeout(wait):
                event = await call.events.get()
        except TimeoutError:
            call.abandoned = True
            self._pending.pop(call.request_id, None)
            return call.request_id
        if event.kind == "error":
            raise event.value
        return call.request_id

    async def cancel(self, request_id: str) -> Any:
        """Stop a running async call or stream of this client: ``{"cancelled": request_id}``."""
        return await self.call("gateway", "cancel", {"request_id": request_id})

    async def ping(self) -> str:
        """``gateway/ping``: ``"pong"``."""
        return await self.call("gateway", "ping")

    # ------------------------------------------------------------------ catalogue

    async def functions(self) -> list[dict]:
        """The catalogue (``gateway/functions``): every function this caller may call."""
        return await self.call("gateway", "functions")

    async def refresh_catalogue(self) -> Catalogue:
        """Fetch the catalogue again (the proxies of :attr:`services` use it)."""
        self._catalogue = Catalogue(await self.functions())
        return self._catalogue

    async def catalogue(self) -> Catalogue:
        """The cached catalogue, fetched on first use."""
        if self._catalogue is None:
            await self.refresh_catalogue()
        return self._catalogue

    @property
    def cached_catalogue(self) -> Catalogue | None:
        """The catalogue if it has been fetched, else ``None`` (no I/O)."""
        return self._catalogue

    def checked_args(self, entry: dict | None, args: Mapping) -> dict:
        """``args`` as sent, checked against the catalogue entry's ``args_schema``.
        Raises :class:`InvalidArguments` before anything is sent."""
        args = wire.plain(args)
        try:
            check_args((entry or {}).get("args_schema"), args)
        except SchemaError as exc:
            raise InvalidArguments(f"Invalid arguments: {exc}") from None
        return args
