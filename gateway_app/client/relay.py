"""Relay groups from the client: thin helpers over the built-in ``relay`` service, and the
queue of relay messages the gateway pushes (``docs/relay.md``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from .errors import ConnectionLost, RelayError
from .wire import RelayMessage

log = logging.getLogger("gateway_app.client")

CLOSED = object()  # the relay queue's end marker


class RelayMethods:
    """The relay part of :class:`gateway_app.client.AsyncClient` (a mixin: it uses the
    client's ``call``). Groups created or joined here are joined again after a reconnect."""

    _relay: asyncio.Queue
    _groups: set[str]

    async def call(self, service: str, request_type: str, args: Any = None, version: str | None = None,
                   timeout: float | None = None) -> Any:
        raise NotImplementedError

    def _relay_put(self, item: Any) -> None:
        if self._relay.full():
            self._relay.get_nowait()
            log.warning("relay buffer full: dropped the oldest relay message")
        self._relay.put_nowait(item)

    async def _rejoin(self, group_id: str) -> None:
        try:
            await self.call("relay", "join_group", {"group_id": group_id})
        except RelayError as exc:
            if exc.error != "Already a member of this group":
                self._groups.discard(group_id)
                log.warning("could not join relay group %r again after reconnecting: %s", group_id, exc.error)
        except ConnectionLost:
            pass  # the next reconnect tries again

    async def relay(self, request_type: str, **args: Any) -> Any:
        """Any request of the built-in ``relay`` service (``accept_member``, ``mute_member``...)."""
        return await self.call("relay", request_type, args)

    async def create_group(self, group_id: str, group_type: str = "public") -> dict:
        """Create a relay group (``public``, ``private`` or ``strict_private``) and join it as its admin."""
        result = await self.relay("create_group", group_id=group_id, group_type=group_type)
        self._groups.add(group_id)
        return result

    async def join(self, group_id: str, *, create: str | None = None) -> dict:
        """Join a relay group: ``{"group_id", "status": "active" | "pending"}``. With ``create``
        (a group type), a group that does not exist is created first. The client joins again
        by itself after a reconnect."""
        for _attempt in range(3):
            try:
                result = await self.relay("join_group", group_id=group_id)
                self._groups.add(group_id)
                return result
            except RelayError as exc:
                if create is None or exc.error != "Group not found":
                    raise
            try:
                return await self.create_group(group_id, create)
            except RelayError as exc:
                if exc.error != "Group already exists":  # someone else just created it: join that
                    raise
        raise RelayError("Group not found")

    async def leave(self, group_id: str) -> dict:
        """Leave a relay group."""
        self._groups.discard(group_id)
        return await self.relay("leave_group", group_id=group_id)

    async def send(self, group_id: str, message: Any) -> dict:
        """Send ``message`` (any JSON value) to a group: ``{"status": "relayed", "recipients_count": N}``.
        Every member receives it as a relay message, this client too (after the answer)."""
        return await self.relay("send", group_id=group_id, message=message)

    async def group_info(self, group_id: str) -> dict:
        """The group's type and members."""
        return await self.relay("group_info", group_id=group_id)

    async def next_relay_message(self, timeout: float | None = None) -> RelayMessage:
        """The next relay message (oldest first). Raises ``TimeoutError`` after ``timeout``
        seconds without one, ``RuntimeError`` once the client is closed."""
        async with asyncio.timeout(timeout):
            item = await self._relay.get()
        if item is CLOSED:
            self._relay.put_nowait(CLOSED)  # for other readers
            raise RuntimeError("the client is closed")
        return item

    async def relay_messages(self, timeout: float | None = None) -> AsyncIterator[RelayMessage]:
        """Relay messages as they arrive, until the client closes (or none arrives within
        ``timeout`` seconds). Several readers share one queue: each message goes to one."""
        while True:
            try:
                yield await self.next_relay_message(timeout)
            except (TimeoutError, RuntimeError):
                return
