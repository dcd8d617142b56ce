"""Relay groups, the part both sides share: delivering one message to a group's members.

Groups and their members live in Redis (:class:`~workers.protocol.Keys`' ``relay_*``
keys), so every gateway process sees the same groups. A member is attached to one
connection of one gateway process; a message is published once per gateway process that
holds members (``<connection ids>\\n<frame>``), and each gateway hands the frame to its own
connections. Only ``active`` and ``muted`` members receive; ``pending`` ones wait for
acceptance.

A worker posts into a group with :func:`send`::

    from workers import relay

    @api.function("close_auction", arg_types={"room": "string"})
    def close_auction(room):
        relay.send(room, {"event": "closed"}, from_user_id="auctioneer")
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import redis

from .protocol import Keys, encode, response
from .settings import Settings

#: error strings of the relay service (the first four are reference §11.4's, exactly)
GROUP_NOT_FOUND = "Group not found"
NOT_A_MEMBER = "Not a member of this group"
PENDING = "Pending membership: wait for acceptance"
MUTED = "You are muted and cannot send messages"
RECEIVING = (b"active", b"muted")


class RelayError(Exception):
    """A message could not be relayed (the group does not exist)."""


def timestamp() -> str:
    """Now, UTC, ISO-8601 with microseconds and ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def relay_frame(request_id: Any, group_id: str, from_user_id: str | None, message: Any) -> dict:
    """The Response every receiving member gets (reference §11.4)."""
    return response(request_id, result={"group_id": group_id, "from_user_id": from_user_id, "message": message,
                                        "timestamp": timestamp()}, success=True)


def members(client: redis.Redis, keys: Keys, group_id: str) -> tuple[bool, dict[bytes, bytes], dict[bytes, bytes]]:
    """(the group exists, status by member, attachment by member), in one round trip."""
    with client.pipeline(transaction=False) as pipe:
        pipe.exists(keys.relay_group(group_id))
        pipe.hgetall(keys.relay_group(group_id, "status"))
        pipe.hgetall(keys.relay_group(group_id, "conn"))
        exists, statuses, attached = pipe.execute()
    return bool(exists), statuses, attached


def recipients(statuses: dict[bytes, bytes]) -> int:
    """Members counted as recipients: active and muted ones."""
    return sum(1 for status in statuses.values() if status in RECEIVING)


def publish(client: redis.Redis, keys: Keys, statuses: dict[bytes, bytes], attached: dict[bytes, bytes],
            frame: dict, skip: str | None = None) -> None:
    """Publish ``frame`` to every receiving member's gateway process, once per process.
    ``skip``: an attachment (``<gateway> <connection>``) the caller serves itself."""
    by_gateway: dict[str, list[str]] = {}
    for user, status in statuses.items():
        if status not in RECEIVING:
            continue
        where = attached.get(user, b"").decode()
        if not where or where == skip:
            continue
        gateway_id, _, conn_id = where.partition(" ")
        by_gateway.setdefault(gateway_id, []).append(conn_id)
    if not by_gateway:
        return
    text = encode(frame)
    with client.pipeline(transaction=False) as pipe:
        for gateway_id, conn_ids in by_gateway.items():
            pipe.publish(keys.relay_channel(gateway_id), ",".join(conn_ids) + "\n" + text)
        pipe.execute()


_client_lock = threading.Lock()
_client: tuple[redis.Redis, Keys] | None = None


def _connection() -> tuple[redis.Redis, Keys]:
    global _client
    with _client_lock:
        if _client is None:
            settings = Settings.from_env()
            _client = (redis.Redis.from_url(settings.redis_url), Keys(settings.key_prefix))
        return _client


def send(group_id: str, message: Any, from_user_id: str | None = None) -> int:
    """Post ``message`` (any JSON value) into ``group_id`` from a worker; every active and
    muted member on every gateway gets it. Returns how many members that counts (active and
    muted); raises :class:`RelayError` when the group does not exist."""
    client, keys = _connection()
    exists, statuses, attached = members(client, keys, group_id)
    if not exists:
        raise RelayError(GROUP_NOT_FOUND)
    publish(client, keys, statuses, attached, relay_frame(f"relay-{uuid.uuid4().hex[:12]}", group_id,
                                                          from_user_id, message))
    return recipients(statuses)
