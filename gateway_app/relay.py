"""The built-in ``relay`` service: group messaging across every gateway process.

``create_group``, ``delete_group``, ``join_group``, ``leave_group``, ``accept_member``,
``mute_member``, ``unmute_member``, ``send`` and ``group_info`` (reference §11, with a wire
API the original lacks). Each change of a group is one Lua script in Redis, so two
gateways can never interleave a read-modify-write; the rules (join table, permission
matrix, the order of the checks) are in those scripts and the table of errors below.

Delivery (:mod:`workers.relay`) publishes once per gateway process that holds receiving
members; this process's :meth:`Relay.on_message` hands the frame to its own connections'
outbound queues, so a slow socket delays nobody else. The sender gets its sync result
first, then its own copy.

Cleanup: a connection that closes leaves every group it joined at once (a group's creator
stays, detached, and comes back by joining again). Each gateway process keeps a heartbeat
key; members attached to a process whose heartbeat expired (it was killed) are removed by
a sweep that one gateway runs every few seconds.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import redis

from workers import relay as shared
from workers.protocol import Keys, encode, response
from workers.settings import Settings
from workers.signals import emit, relay_delivered

from . import errors
from .errors import Rejected

if TYPE_CHECKING:
    from .connection import Connection
    from .decoding import Request

log = logging.getLogger("genapi.relay")

SERVICE = "relay"
GROUP_TYPES = ("public", "private", "strict_private")
MAX_GROUP_ID_BYTES = 200

#: what the scripts answer (``{"err", code}``) and what the client reads
MESSAGES = {
    "not_found": shared.GROUP_NOT_FOUND,
    "not_member": shared.NOT_A_MEMBER,
    "pending": shared.PENDING,
    "muted": shared.MUTED,
    "already_exists": "Group already exists",
    "already_member": "Already a member of this group",
    "not_admin": "Not a group admin",
    "target_not_member": "User is not a member of this group",
    "not_pending": "User is not pending",
    "not_strict_private": "Only strict_private groups can mute members",
    "cannot_mute": "Only active members can be muted",
    "not_muted": "User is not muted",
}

# Every script: KEYS = group hash, status, roles, conn, joined, the set of groups.
_PRELUDE = """
local gtype = redis.call('HGET', KEYS[1], 'type')
local function err(code) return {'err', code} end
local function member(user) return redis.call('HGET', KEYS[2], user) end
local function role(user) return redis.call('HGET', KEYS[3], user) end
local function forget(user)
  for i = 2, 5 do redis.call('HDEL', KEYS[i], user) end
end
"""

# ARGV: user, type, attachment, now
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {'err', 'already_exists'} end
redis.call('HSET', KEYS[1], 'type', ARGV[2], 'creator', ARGV[1], 'created', ARGV[4])
redis.call('SADD', KEYS[6], KEYS[1])
redis.call('HSET', KEYS[2], ARGV[1], 'active')
redis.call('HSET', KEYS[3], ARGV[1], 'admin')
redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[5], ARGV[1], ARGV[4])
return {'ok', 'created'}
"""

# ARGV: user, attachment, now, prefix of the gateways' heartbeat keys
_JOIN = _PRELUDE + """
if not gtype then return err('not_found') end
local status = member(ARGV[1])
if status then
  local where = redis.call('HGET', KEYS[4], ARGV[1])
  local gw = where and string.match(where, '^(%S+) ')
  if not gw or redis.call('EXISTS', ARGV[4] .. gw) == 0 then
    redis.call('HSET', KEYS[4], ARGV[1], ARGV[2])  -- detached, or its gateway died: re-attach
    return {'ok', status}
  end
  if gtype == 'public' then
    if status == 'active' then return err('already_member') end
    status = 'active'
  elseif status == 'muted' then
    status = 'pending'
  else
    return err('already_member')
  end
else
  status = gtype == 'public' and 'active' or 'pending'
  redis.call('HSET', KEYS[3], ARGV[1], 'member')
  redis.call('HSET', KEYS[5], ARGV[1], ARGV[3])
end
redis.call('HSET', KEYS[2], ARGV[1], status)
redis.call('HSET', KEYS[4], ARGV[1], ARGV[2])
return {'ok', status}
"""

# ARGV: user
_LEAVE = _PRELUDE + """
if not gtype then return err('not_found') end
if not member(ARGV[1]) then return err('not_member') end
forget(ARGV[1])
if redis.call('HGET', KEYS[1], 'creator') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'creator', '')  -- a creator who leaves is a plain member if it comes back
end
return {'ok', 'left'}
"""

# ARGV: user, attachment. A closed connection: its members leave; the creator is detached.
_DETACH = _PRELUDE + """
if redis.call('HGET', KEYS[4], ARGV[1]) ~= ARGV[2] then return {'ok', 'moved'} end
if gtype and redis.call('HGET', KEYS[1], 'creator') == ARGV[1] then
  redis.call('HSET', KEYS[4], ARGV[1], '')
  return {'ok', 'detached'}
end
forget(ARGV[1])
return {'ok', 'left'}
"""

# ARGV: user
_DELETE = _PRELUDE + """
if not gtype then return err('not_found') end
local status = member(ARGV[1])
if not status then return err('not_member') end
if status ~= 'active' or role(ARGV[1]) ~= 'admin' then return err('not_admin') end
for i = 1, 5 do redis.call('DEL', KEYS[i]) end
redis.call('SREM', KEYS[6], KEYS[1])
return {'ok', 'deleted'}
"""

# ARGV: actor, target (reference §11.2's order of checks)
_ACCEPT = _PRELUDE + """
if not gtype then return err('not_found') end
local actor = member(ARGV[1])
if not actor then return err('not_member') end
if actor ~= 'active' then return err('not_admin') end
if gtype == 'strict_private' and role(ARGV[1]) ~= 'admin' then return err('not_admin') end
local target = member(ARGV[2])
if not target then return err('target_not_member') end
if target ~= 'pending' then return err('not_pending') end
redis.call('HSET', KEYS[2], ARGV[2], 'active')
return {'ok', 'active'}
"""

# ARGV: actor, target, 'mute' | 'unmute'
_MUTE = _PRELUDE + """
if not gtype then return err('not_found') end
if gtype ~= 'strict_private' then return err('not_strict_private') end
if member(ARGV[1]) ~= 'active' or role(ARGV[1]) ~= 'admin' then return err('not_admin') end
local target = member(ARGV[2])
if not target then return err('target_not_member') end
if ARGV[3] == 'mute' then
  if target ~= 'active' then return err('cannot_mute') end
  redis.call('HSET', KEYS[2], ARGV[2], 'muted')
  return {'ok', 'muted'}
end
if target ~= 'muted' then return err('not_muted') end
redis.call('HSET', KEYS[2], ARGV[2], 'active')
return {'ok', 'active'}
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Relay:
    """One gateway process's side of relay groups."""

    def __init__(self, client: redis.Redis, keys: Keys, gateway_id: str, settings: Settings) -> None:
        self.client = client
        self.keys = keys
        self.gateway_id = gateway_id
        self.max_message_bytes = settings.relay_max_message_bytes
        self.max_groups = settings.relay_max_groups
        self.ttl = settings.relay_ttl
        #: connections of this process attached to a group, by connection id
        self.connections: dict[str, Connection] = {}
        self._scripts = {name: client.register_script(body) for name, body in (
            ("create", _CREATE), ("join", _JOIN), ("leave", _LEAVE), ("detach", _DETACH), ("delete", _DELETE),
            ("accept", _ACCEPT), ("mute", _MUTE))}
        self._stop = threading.Event()
        self.handlers = {
            "create_group": self.create_group, "delete_group": self.delete_group, "join_group": self.join_group,
            "leave_group": self.leave_group, "accept_member": self.accept_member,
            "mute_member": self.mute_member, "unmute_member": self.unmute_member, "send": self.send,
            "group_info": self.group_info,
        }

    # ------------------------------------------------------------------ plumbing

    def _where(self, conn: Connection) -> str:
        return f"{self.gateway_id} {conn.id}"

    def _run(self, name: str, group_id: str, *args: Any) -> str:
        keys = [self.keys.relay_group(group_id, part) for part in ("", "status", "roles", "conn", "joined")]
        outcome, value = self._scripts[name](keys=keys + [self.keys.relay_groups], args=list(args))
        if _text(outcome) == "err":
            raise Rejected(MESSAGES[_text(value)], code=f"relay_{_text(value)}")
        return _text(value)

    def _attach(self, conn: Connection, group_id: str) -> None:
        conn.relay_groups.add(group_id)
        self.connections[conn.id] = conn

    def _check_room(self, conn: Connection, group_id: str) -> None:
        if group_id in conn.relay_groups or len(conn.relay_groups) < self.max_groups:
            return
        # at the cap: forget groups this connection no longer holds (deleted, left elsewhere)
        held = sorted(conn.relay_groups)
        with self.client.pipeline(transaction=False) as pipe:
            for held_id in held:
                pipe.hget(self.keys.relay_group(held_id, "conn"), conn.identity.user_id)
            attached = pipe.execute()
        where = self._where(conn).encode()
        conn.relay_groups.intersection_update(g for g, a in zip(held, attached, strict=True) if a == where)
        if len(conn.relay_groups) >= self.max_groups:
            raise Rejected(f"Too many groups on this connection (at most {self.max_groups})",
                           code="relay_too_many_groups")

    # ------------------------------------------------------------------ the service

    def answer(self, conn: Connection, request: Request) -> None:
        """Answer one ``relay`` request on ``conn`` (its sync frame, and for ``send`` the
        sender's own copy after it); refusals raise ``Rejected``."""
        handler = self.handlers.get(request.request_type)
        if handler is None:
            raise errors.unsupported(request.request_type, request.version)
        if conn.identity is None:
            raise errors.auth_required()
        try:
            result = handler(conn, conn.identity.user_id, request)
        except redis.RedisError as exc:
            log.warning("relay %s failed: %s", request.request_type, exc)
            raise errors.unavailable("relay_redis_unavailable") from None
        result, own_copy = result if isinstance(result, tuple) else (result, None)
        conn.send(response(request.request_id, result=result, success=True))
        if own_copy is not None:
            conn.send_text(own_copy, terminal=False)

    def create_group(self, conn: Connection, user: str, request: Request) -> dict:
        group_id, group_type = _group_id(request.args), request.args.get("group_type")
        if group_type not in GROUP_TYPES:
            raise errors.bad_arguments(f"group_type must be one of {', '.join(GROUP_TYPES)}, got {group_type!r}")
        self._check_room(conn, group_id)
        self._run("create", group_id, user, group_type, self._where(conn), shared.timestamp())
        self._attach(conn, group_id)
        return {"group_id": group_id, "group_type": group_type, "status": "created"}

    def delete_group(self, conn: Connection, user: str, request: Request) -> dict:
        group_id = _group_id(request.args)
        return {"group_id": group_id, "status": self._run("delete", group_id, user)}

    def join_group(self, conn: Connection, user: str, request: Request) -> dict:
        group_id = _group_id(request.args)
        self._check_room(conn, group_id)
        status = self._run("join", group_id, user, self._where(conn), shared.timestamp(),
                           self.keys.relay_alive(""))
        self._attach(conn, group_id)
        return {"group_id": group_id, "status": status}

    def leave_group(self, conn: Connection, user: str, request: Request) -> dict:
        group_id = _group_id(request.args)
        status = self._run("leave", group_id, user)
        conn.relay_groups.discard(group_id)
        if not conn.relay_groups:
            self.connections.pop(conn.id, None)
        return {"group_id": group_id, "status": status}

    def accept_member(self, conn: Connection, user: str, request: Request) -> dict:
        group_id, target = _group_id(request.args), _target(request.args)
        return {"group_id": group_id, "target": target, "status": self._run("accept", group_id, user, target)}

    def mute_member(self, conn: Connection, user: str, request: Request) -> dict:
        group_id, target = _group_id(request.args), _target(request.args)
        return {"group_id": group_id, "target": target, "status": self._run("mute", group_id, user, target, "mute")}

    def unmute_member(self, conn: Connection, user: str, request: Request) -> dict:
        group_id, target = _group_id(request.args), _target(request.args)
        return {"group_id": group_id, "target": target,
                "status": self._run("mute", group_id, user, target, "unmute")}

    def send(self, conn: Connection, user: str, request: Request) -> tuple[dict, str | None]:
        group_id = _group_id(request.args)
        if "message" not in request.args:
            raise errors.bad_arguments("message is required (any JSON value)")
        message = request.args["message"]
        exists, statuses, attached = shared.members(self.client, self.keys, group_id)
        if not exists:
            raise Rejected(shared.GROUP_NOT_FOUND, code="relay_not_found")
        status = statuses.get(user.encode())
        if status is None:
            raise Rejected(shared.NOT_A_MEMBER, code="relay_not_member")
        if status == b"pending":
            raise Rejected(shared.PENDING, code="relay_pending")
        if status == b"muted":
            raise Rejected(shared.MUTED, code="relay_muted")
        size = len(encode(message).encode("utf-8", "surrogatepass"))
        if size > self.max_message_bytes:
            raise errors.bad_arguments(f"message is {size} bytes, more than the relay limit of "
                                       f"{self.max_message_bytes}")
        frame = shared.relay_frame(request.request_id, group_id, user, message)
        mine = self._where(conn)
        shared.publish(self.client, self.keys, statuses, attached, frame, skip=mine)
        # the sender's own copy goes after its sync result, on this connection
        own_copy = encode(frame) if attached.get(user.encode(), b"").decode() == mine else None
        return {"status": "relayed", "recipients_count": shared.recipients(statuses)}, own_copy

    def group_info(self, conn: Connection, user: str, request: Request) -> dict:
        group_id = _group_id(request.args)
        parts = ("", "status", "roles", "joined", "conn")
        with self.client.pipeline(transaction=False) as pipe:
            for part in parts:
                pipe.hgetall(self.keys.relay_group(group_id, part))
            group, statuses, roles, joined, attached = pipe.execute()
        if not group:
            raise Rejected(shared.GROUP_NOT_FOUND, code="relay_not_found")
        group_type = group[b"type"].decode()
        if group_type != "public" and user.encode() not in statuses:
            raise Rejected(shared.NOT_A_MEMBER, code="relay_not_member")
        gateways = sorted({v.decode().partition(" ")[0] for v in attached.values() if v})
        alive = dict(zip(gateways, self.client.mget([self.keys.relay_alive(g) for g in gateways]), strict=True)) \
            if gateways else {}
        members = {}
        for member, status in statuses.items():
            where = attached.get(member, b"").decode()
            members[member.decode()] = {
                "status": status.decode(), "roles": [roles.get(member, b"member").decode()],
                "joined_at": joined.get(member, b"").decode() or None,
                "connected": bool(where) and alive.get(where.partition(" ")[0]) is not None,
            }
        return {"group_id": group_id, "group_type": group_type, "members": members}

    # ------------------------------------------------------------------ delivery and cleanup

    def on_message(self, data: bytes) -> None:
        """A relay frame for some of this process's connections."""
        started = time.monotonic()
        header, _, frame = data.partition(b"\n")
        text = frame.decode()
        delivered = 0
        for conn_id in header.decode().split(","):
            conn = self.connections.get(conn_id)
            if conn is None:
                continue
            if conn.send_text(text, terminal=False):
                delivered += 1
            else:
                log.info("relay frame dropped for connection %s (closed or not reading)", conn_id)
        if relay_delivered.receivers:
            result = _frame_result(text)
            emit(relay_delivered, self, group_id=result.get("group_id"), recipients=delivered,
                 duration=time.monotonic() - started)

    def disconnected(self, conn: Connection) -> None:
        """The connection closed: it leaves every group it joined (a creator is detached)."""
        self.connections.pop(conn.id, None)
        where = self._where(conn)
        for group_id in list(conn.relay_groups):
            try:
                self._run("detach", group_id, conn.identity.user_id, where)
            except (redis.RedisError, Rejected) as exc:
                log.warning("could not remove %s from relay group %s: %s (its gateway heartbeat will)",
                            conn.identity.user_id, group_id, exc)
        conn.relay_groups.clear()

    def heartbeat(self) -> None:
        """Keep this process's heartbeat key alive until :meth:`stop` (a thread)."""
        self._stop.clear()
        while not self._stop.is_set():
            try:
                self.client.set(self.keys.relay_alive(self.gateway_id), "1", px=int(self.ttl * 1000))
            except redis.RedisError as exc:
                log.warning("relay heartbeat failed: %s", exc)
            self._stop.wait(self.ttl / 3)

    def stop(self) -> None:
        self._stop.set()
        try:
            self.client.delete(self.keys.relay_alive(self.gateway_id))
        except redis.RedisError:
            pass

    def sweep(self) -> float:
        """Remove members attached to gateway processes whose heartbeat expired (one
        gateway runs this, under a lease); returns the seconds until the next sweep."""
        started = time.monotonic()
        removed = 0
        prefix = len(self.keys.relay_group("")) - 1  # up to the opening brace
        for group_key in self.client.sscan_iter(self.keys.relay_groups):
            group_id = _text(group_key)[prefix:-1]
            attached = self.client.hgetall(self.keys.relay_group(group_id, "conn"))
            gateways = sorted({v.decode().partition(" ")[0] for v in attached.values() if v})
            if not gateways:
                continue
            alive = self.client.mget([self.keys.relay_alive(g) for g in gateways])
            dead = {g for g, a in zip(gateways, alive, strict=True) if a is None}
            for member, where in attached.items():
                if where and where.decode().partition(" ")[0] in dead:
                    self._run("detach", group_id, member.decode(), where.decode())
                    removed += 1
        if removed:
            log.info("relay: removed %d member(s) of dead gateways in %.0f ms", removed,
                     (time.monotonic() - started) * 1000)
        return max(1.0, self.ttl / 3)


def _group_id(args: dict) -> str:
    group_id = args.get("group_id")
    if not isinstance(group_id, str) or not group_id or len(group_id.encode()) > MAX_GROUP_ID_BYTES:
        raise errors.bad_arguments(f"group_id must be a non-empty string of at most {MAX_GROUP_ID_BYTES} bytes")
    return group_id


def _target(args: dict) -> str:
    target = args.get("target")
    if not isinstance(target, str) or not target:
        raise errors.bad_arguments("target must be the user id of a member")
    return target


__all__ = ["Relay", "SERVICE"]


def _frame_result(text: str) -> dict:
    """The ``result`` object of a relay frame (for telemetry only)."""
    try:
        result = json.loads(text).get("result")
    except (ValueError, AttributeError):
        return {}
    return result if isinstance(result, dict) else {}
