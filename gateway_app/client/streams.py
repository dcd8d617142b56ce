"""Stream iterators: chunk results as they arrive, and a cancel when the caller stops early."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .aio import AsyncClient
    from .calls import Call


class AsyncStream:
    """An async iterator of one call's chunk results (see :meth:`AsyncClient.stream`).

    Use it with ``async for``, optionally inside ``async with`` (which cancels a stream still
    running when the block ends). :meth:`aclose` stops it early: it sends ``gateway/cancel``
    and waits (at most the client's timeout) for the stream's terminal frame, so the
    producer has been told to stop when it returns."""

    def __init__(self, client: AsyncClient, service: str, request_type: str, args: Mapping | None,
                 version: str | None, timeout: float | None) -> None:
        self._client = client
        self._request = (service, request_type, args, version)
        self._timeout = timeout
        self._call: Call | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done = False

    @property
    def request_id(self) -> str | None:
        """The request id, once the request was sent."""
        return None if self._call is None else self._call.request_id

    @property
    def mode(self) -> str | None:
        """``"stream"``, ``"async"`` or ``"sync"`` once the first frame arrived (else ``None``)."""
        return None if self._call is None else self._call.mode

    async def start(self) -> AsyncStream:
        """Send the request now (the first iteration does it otherwise)."""
        if self._call is None:
            self._loop = asyncio.get_running_loop()
            wait = self._client.timeout if self._timeout is None else self._timeout
            self._call = await self._client._start(*self._request, wait)
        return self

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> Any:
        if self._done:
            raise StopAsyncIteration
        await self.start()
        try:
            event = await self._client._next(self._call, self._timeout)
        except BaseException:
            self._done = True
            raise
        if event.kind == "chunk":
            return event.value
        self._done = True
        if event.kind == "result":  # a sync or async function: its one result
            return event.value
        if event.kind == "end":
            raise StopAsyncIteration
        raise event.value

    async def aclose(self) -> None:
        """Stop early: cancel the stream if it still runs and wait for its terminal frame."""
        self._done = True
        call = self._call
        if call is None or call.finished.is_set():
            return
        self._client._abandon(call)
        try:
            async with asyncio.timeout(self._client.timeout):
                await call.finished.wait()
        except TimeoutError:
            pass

    async def __aenter__(self) -> AsyncStream:
        return await self.start()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    def abandon_threadsafe(self) -> None:
        """From any thread, without waiting: stop the stream if it still runs."""
        self._done = True
        call, loop = self._call, self._loop
        if call is None or loop is None or call.finished.is_set():
            return
        try:
            loop.call_soon_threadsafe(self._client._abandon, call)
        except RuntimeError:
            pass  # the loop is closed: the connection is gone, and the stream with it

    def __del__(self) -> None:
        try:
            self.abandon_threadsafe()
        except Exception:  # noqa: BLE001 - never raise from a finaliser (interpreter shutdown)
            pass
