"""The blocking client: the asyncio engine on a private event-loop thread.

Every method hands a coroutine to that loop and waits for it, so a :class:`Client` may be
used from any number of threads at once; all of them share one WebSocket.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any

from . import wire
from .aio import AsyncClient
from .proxies import Catalogue, Services
from .streams import AsyncStream


def _shutdown(loop: asyncio.AbstractEventLoop, thread: threading.Thread, engine: AsyncClient) -> None:
    """Close the engine and stop its loop thread (``close()``, or the client was collected)."""
    if loop.is_closed():
        return
    if thread.is_alive() and threading.current_thread() is not thread:
        try:
            asyncio.run_coroutine_threadsafe(engine.close(), loop).result(timeout=15)
        except (concurrent.futures.TimeoutError, RuntimeError):
            pass
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=15)
    if not loop.is_running():
        loop.close()


class Client:
    """A blocking client of the gateway.

    ``Client(url, token=...)`` takes the arguments of :class:`AsyncClient` (``encoding``,
    ``timeout``, ``reconnect``, ``max_backoff``, ``relay_buffer``). Use it as a context
    manager or call :meth:`close`. ``client.services.<service>.<request_type>(**args)`` calls
    a function by name (:mod:`gateway_app.client.proxies`).
    """

    def __init__(self, url: str = wire.DEFAULT_URL, token: str | None = None, **options: Any) -> None:
        self._aio = AsyncClient(url, token, **options)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="genapi-client", daemon=True)
        self._thread.start()
        self._finalizer = weakref.finalize(self, _shutdown, self._loop, self._thread, self._aio)
        #: ``client.services.<service>.<request_type>(**args)``: proxies from the catalogue
        self.services = Services(self)

    @property
    def url(self) -> str:
        return self._aio.url

    @property
    def timeout(self) -> float:
        return self._aio.timeout

    @property
    def connected(self) -> bool:
        """The WebSocket is open right now."""
        return self._aio.connected

    def _submit(self, coro: Coroutine) -> concurrent.futures.Future:
        if not self._finalizer.alive:
            coro.close()
            raise RuntimeError("the client is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def _run(self, coro: Coroutine) -> Any:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a blocking Client method was called on the client's own event loop")
        future = self._submit(coro)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. Ctrl-C: the call is abandoned (and cancelled once it runs)
            raise

    # ------------------------------------------------------------------ connection

    def connect(self) -> Client:
        """Open the WebSocket now (calls open it on demand). Raises :class:`ConnectFailed`."""
        self._run(self._aio.connect())
        return self

    def close(self) -> None:
        """Close the WebSocket and stop the client's thread."""
        self._finalizer()

    def __enter__(self) -> Client:
        return self.connect()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ calls

    def call(self, service: str, request_type: str, args: Mapping | None = None, version: str | None = None,
             timeout: float | None = None) -> Any:
        """The function's result, or a raised :class:`GenApiCallError` (see :meth:`AsyncClient.call`)."""
        return self._run(self._aio.call(service, request_type, args, version, timeout))

    def call_async(self, service: str, request_type: str, args: Mapping | None = None, version: str | None = None,
                   timeout: float | None = None) -> concurrent.futures.Future:
        """:meth:`call` without waiting: a ``concurrent.futures.Future`` of the result."""
        return self._submit(self._aio.call(service, request_type, args, version, timeout))

    def stream(self, service: str, request_type: str, args: Mapping | None = None, version: str | None = None,
               timeout: float | None = None) -> Stream:
        """An iterator of a stream's chunk results (see :meth:`AsyncClient.stream`). The request
        is sent at once; leaving the loop early cancels the stream."""
        stream = Stream(self, self._aio.stream(service, request_type, args, version, timeout))
        self._run(stream._stream.start())
        return stream

    def notify(self, service: str, request_type: str, args: Mapping | None = None, version: str | None = None,
               wait: float = 0.0) -> str:
        """Send without waiting for an answer (see :meth:`AsyncClient.notify`)."""
        return self._run(self._aio.notify(service, request_type, args, version, wait))

    def cancel(self, request_id: str) -> Any:
        """Stop a running async call or stream of this client."""
        return self._run(self._aio.cancel(request_id))

    def ping(self) -> str:
        """``gateway/ping``: ``"pong"``."""
        return self._run(self._aio.ping())

    # ------------------------------------------------------------------ catalogue

    def functions(self) -> list[dict]:
        """The catalogue: every function this caller may call."""
        return self._run(self._aio.functions())

    def refresh_catalogue(self) -> Catalogue:
        """Fetch the catalogue again (the proxies of :attr:`services` use it)."""
        return self._run(self._aio.refresh_catalogue())

    def _catalogue_where(self, found: Callable[[Catalogue], bool]) -> Catalogue:
        """The cached catalogue, fetched again once if ``found`` is false for it."""
        catalogue = self._aio.cached_catalogue
        if catalogue is None:
            catalogue = self._run(self._aio.catalogue())
        if not found(catalogue):
            catalogue = self.refresh_catalogue()
        return catalogue

    # ------------------------------------------------------------------ relay

    def relay(self, request_type: str, **args: Any) -> Any:
        """Any request of the built-in ``relay`` service."""
        return self._run(self._aio.relay(request_type, **args))

    def create_group(self, group_id: str, group_type: str = "public") -> dict:
        """Create a relay group and join it as its admin."""
        return self._run(self._aio.create_group(group_id, group_type))

    def join(self, group_id: str, *, create: str | None = None) -> dict:
        """Join a relay group (creating it as a ``create`` group if it does not exist)."""
        return self._run(self._aio.join(group_id, create=create))

    def leave(self, group_id: str) -> dict:
        """Leave a relay group."""
        return self._run(self._aio.leave(group_id))

    def send(self, group_id: str, message: Any) -> dict:
        """Send a message to a relay group."""
        return self._run(self._aio.send(group_id, message))

    def group_info(self, group_id: str) -> dict:
        """The group's type and members."""
        return self._run(self._aio.group_info(group_id))

    def next_relay_message(self, timeout: float | None = None) -> wire.RelayMessage:
        """The next relay message; ``TimeoutError`` after ``timeout`` seconds without one."""
        return self._run(self._aio.next_relay_message(timeout))

    def relay_messages(self, timeout: float | None = None) -> Iterator[wire.RelayMessage]:
        """Relay messages as they arrive, until the client closes (or none comes within ``timeout``)."""
        while True:
            try:
                yield self.next_relay_message(timeout)
            except (TimeoutError, RuntimeError):
                return


_END = object()


async def _next_or_end(stream: AsyncStream) -> Any:
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return _END


class Stream:
    """A blocking iterator of chunk results. ``close()`` (or ``with``, or dropping the
    iterator) stops a stream that still runs: ``gateway/cancel`` stops its producer."""

    def __init__(self, client: Client, stream: AsyncStream) -> None:
        self._client = client
        self._stream = stream

    @property
    def request_id(self) -> str | None:
        return self._stream.request_id

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> Any:
        item = self._client._run(_next_or_end(self._stream))
        if item is _END:
            raise StopIteration
        return item

    def close(self) -> None:
        """Cancel the stream if it still runs, and wait for its terminal frame."""
        self._client._run(self._stream.aclose())

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self._stream.abandon_threadsafe()
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass
