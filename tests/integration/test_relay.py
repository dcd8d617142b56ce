"""Relay groups (the built-in ``relay`` service, reference §11) with a real Redis, two gateway
processes and WebSocket clients of different users on different gateways: the join table,
the permission matrix, every error string, delivery across gateways (frame shape, order,
pending and muted members), the limits, anonymous callers and a worker posting into a group
(``genapi worker tests.services.relay_bot``)."""

from __future__ import annotations

import itertools
import json
import re
import time
import uuid
from datetime import UTC, datetime

import pytest

from workers.protocol import Keys

from .conftest import Stack, _databases, nothing_more, request

#: seconds a socket must stay silent to count as "received nothing" (a bounded absence check)
QUIET = 0.5
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
JOINED_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
SMALL_LIMIT = 100  # GENAPI_RELAY_MAX_MESSAGE_BYTES of the ``small`` gateway
SMALL_GROUPS = 2  # GENAPI_RELAY_MAX_GROUPS of the ``small`` gateway
DEFAULT_LIMIT = 65536

# the spec's error strings, exactly
AUTH_REQUIRED = "Authentication required"
GROUP_NOT_FOUND = "Group not found"
GROUP_EXISTS = "Group already exists"
NOT_A_MEMBER = "Not a member of this group"
NOT_ADMIN = "Not a group admin"
ALREADY = "Already a member of this group"
TARGET_NOT_MEMBER = "User is not a member of this group"
NOT_PENDING = "User is not pending"
NOT_STRICT = "Only strict_private groups can mute members"
CANNOT_MUTE = "Only active members can be muted"
NOT_MUTED = "User is not muted"
PENDING = "Pending membership: wait for acceptance"
MUTED = "You are muted and cannot send messages"
INVALID = "Invalid arguments: "
FRAME_KEYS = {"request_id", "result", "success", "error", "async", "has_more", "can_retry"}

_request_ids = itertools.count()


def who(prefix: str = "user") -> str:
    """A user id no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def new_group_id() -> str:
    return f"group-{uuid.uuid4().hex[:12]}"


def too_large(limit: int) -> tuple[str, int]:
    """A string message one byte over ``limit`` once JSON-encoded, and its encoded size."""
    return "x" * (limit - 1), limit + 1


class Member:
    """One user's WebSocket on one gateway process. Frames that are not the answer being
    waited for (relay frames) are kept, in order, for :meth:`received`."""

    def __init__(self, gateway, user: str | None, path: str = "/ws") -> None:
        self.user = user
        self.gateway = gateway
        self.ws = gateway.connect(path=path, user=user, roles=())
        self.inbox: list[dict] = []

    def ask(self, request_type: str, args: dict | None = None, service: str = "relay",
            request_id: str | None = None, timeout: float = 10) -> dict:
        """Send one request; return the first frame answering it (its sync result)."""
        request_id = request_id or f"{self.user}-{next(_request_ids)}"
        self.ws.send(json.dumps(request(request_type, args if args is not None else {}, request_id=request_id,
                                        service=service)))
        deadline = time.monotonic() + timeout
        while True:
            frame = json.loads(self.ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if frame["request_id"] == request_id:
                return frame
            self.inbox.append(frame)

    def ok(self, request_type: str, **args) -> dict:
        """The result of a relay request that must succeed."""
        frame = self.ask(request_type, args)
        assert frame["success"] is True and frame["error"] is None, (request_type, args, frame)
        return frame["result"]

    def refused(self, request_type: str, **args) -> str:
        """The error of a relay request that must fail (not retryable, one sync frame)."""
        frame = self.ask(request_type, args)
        assert set(frame) == FRAME_KEYS, frame
        assert frame["success"] is False and frame["result"] is None, (request_type, args, frame)
        assert frame["can_retry"] is False and frame["async"] is False and frame["has_more"] is False, frame
        return frame["error"]

    def received(self, timeout: float = 5) -> dict:
        """The next frame nobody asked for (a relay frame)."""
        if self.inbox:
            return self.inbox.pop(0)
        return json.loads(self.ws.recv(timeout=timeout))

    def quiet(self, within: float = QUIET) -> bool:
        """Nothing is waiting and nothing arrives within ``within`` seconds."""
        return not self.inbox and nothing_more(self.ws, within)

    def close(self) -> None:
        self.ws.close()


# ---------------------------------------------------------------------------- groups


def create(owner: Member, group_type: str) -> str:
    group_id = new_group_id()
    assert owner.ok("create_group", group_id=group_id, group_type=group_type) == \
        {"group_id": group_id, "group_type": group_type, "status": "created"}
    return group_id


def info(asker: Member, group_id: str) -> dict:
    return asker.ok("group_info", group_id=group_id)


def status_of(asker: Member, group_id: str, user: str) -> str | None:
    """The member's status in ``group_info`` (None: not a member)."""
    member = info(asker, group_id)["members"].get(user)
    return member and member["status"]


def force_status(stack: Stack, group_id: str, user: str, status: str) -> None:
    """Set a member's status in Redis directly: for the join table's cells the API cannot
    reach (public members are never pending nor muted, private ones never muted)."""
    stack.redis.hset(Keys().relay_group(group_id, "status"), user, status)


def make_active(owner: Member, member: Member, group_id: str) -> None:
    if member.ok("join_group", group_id=group_id)["status"] == "pending":
        owner.ok("accept_member", group_id=group_id, target=member.user)
    assert status_of(owner, group_id, member.user) == "active"


def make_pending(member: Member, group_id: str) -> None:
    assert member.ok("join_group", group_id=group_id) == {"group_id": group_id, "status": "pending"}


def make_muted(owner: Member, member: Member, group_id: str) -> None:
    """strict_private only: joined, accepted, muted by the admin."""
    make_active(owner, member, group_id)
    assert owner.ok("mute_member", group_id=group_id, target=member.user) == \
        {"group_id": group_id, "target": member.user, "status": "muted"}


def put_in_state(stack: Stack, owner: Member, member: Member, group_id: str, group_type: str, state: str) -> None:
    """Make ``member`` a member of ``group_id`` with status ``state`` (or none)."""
    if state == "not_member":
        return
    joined = member.ok("join_group", group_id=group_id)["status"]
    if state == "pending":
        if joined != "pending":
            force_status(stack, group_id, member.user, "pending")
    else:
        if joined == "pending":
            owner.ok("accept_member", group_id=group_id, target=member.user)
        if state == "muted":
            if group_type == "strict_private":
                owner.ok("mute_member", group_id=group_id, target=member.user)
            else:
                force_status(stack, group_id, member.user, "muted")
    assert status_of(owner, group_id, member.user) == state


def assert_relay_frame(frame: dict, request_id: str | None, group_id: str, sender: str, message) -> None:
    """The exact relay frame of the spec; ``request_id`` None: only its shape is checked."""
    assert set(frame) == FRAME_KEYS, frame
    if request_id is not None:
        assert frame["request_id"] == request_id, frame
    assert (frame["success"], frame["error"], frame["async"], frame["has_more"], frame["can_retry"]) == \
        (True, None, False, False, False), frame
    result = frame["result"]
    assert set(result) == {"group_id", "from_user_id", "message", "timestamp"}, frame
    assert (result["group_id"], result["from_user_id"], result["message"]) == (group_id, sender, message), frame
    assert TIMESTAMP.fullmatch(result["timestamp"]), frame
    sent = datetime.strptime(result["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - sent).total_seconds()) < 60, frame


# ---------------------------------------------------------------------------- the stack


@pytest.fixture(scope="module")
def relay_stack(redis_server, tmp_path_factory):
    """A relay_bot worker and three gateway processes on a database of their own: ``a``
    (public endpoint on, detailed internal errors), ``b`` (detailed internal errors) and
    ``small`` (messages up to SMALL_LIMIT bytes, SMALL_GROUPS groups per connection)."""
    stack = Stack(f"redis://127.0.0.1:{redis_server}/{next(_databases)}", tmp_path_factory.mktemp("relay"))
    try:
        stack.worker = stack.start_worker("tests.services.relay_bot")
        stack.a = stack.start_gateway(stack.worker, GENAPI_PUBLIC_WS="1", GENAPI_DETAIL_ERROR="1")
        stack.b = stack.start_gateway(stack.worker, GENAPI_DETAIL_ERROR="1")
        stack.small = stack.start_gateway(GENAPI_RELAY_MAX_MESSAGE_BYTES=str(SMALL_LIMIT),
                                          GENAPI_RELAY_MAX_GROUPS=str(SMALL_GROUPS))
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture
def people():
    """``people(gateway, prefix)``: a new user (or ``user``, or nobody with ``anonymous``)
    connected to ``gateway``; closed after the test."""
    opened: list[Member] = []

    def open_member(gateway, prefix: str = "user", path: str = "/ws", anonymous: bool = False,
                    user: str | None = None) -> Member:
        member = Member(gateway, None if anonymous else user or who(prefix), path)
        opened.append(member)
        return member

    try:
        yield open_member
    finally:
        for member in opened:
            member.close()


# ---------------------------------------------------------------------------- join table

JOIN_TABLE = [
    ("public", "not_member", "active"),
    ("public", "active", ALREADY),
    ("public", "pending", "active"),
    ("public", "muted", "active"),
    ("private", "not_member", "pending"),
    ("private", "active", ALREADY),
    ("private", "pending", ALREADY),
    ("private", "muted", "pending"),
    ("strict_private", "not_member", "pending"),
    ("strict_private", "active", ALREADY),
    ("strict_private", "pending", ALREADY),
    ("strict_private", "muted", "pending"),
]


@pytest.mark.parametrize(("group_type", "state", "outcome"), JOIN_TABLE)
def test_join_group_gives_the_join_tables_status_or_error_for_each_type_and_membership(
        relay_stack, people, group_type, state, outcome):
    owner, user = people(relay_stack.a, "owner"), people(relay_stack.b, "joiner")
    group_id = create(owner, group_type)
    put_in_state(relay_stack, owner, user, group_id, group_type, state)
    if outcome == ALREADY:
        assert user.refused("join_group", group_id=group_id) == ALREADY
        assert status_of(owner, group_id, user.user) == state
    else:
        assert user.ok("join_group", group_id=group_id) == {"group_id": group_id, "status": outcome}
        assert status_of(owner, group_id, user.user) == outcome


def test_join_group_of_a_missing_group_is_group_not_found(relay_stack, people):
    user = people(relay_stack.b)
    assert user.refused("join_group", group_id=new_group_id()) == GROUP_NOT_FOUND


def test_a_member_cannot_join_again_through_a_second_connection(relay_stack, people):
    owner = people(relay_stack.a, "owner")
    group_id = create(owner, "public")
    first = people(relay_stack.a)
    assert first.ok("join_group", group_id=group_id)["status"] == "active"
    second = Member(relay_stack.b, first.user)
    try:
        assert second.refused("join_group", group_id=group_id) == ALREADY
    finally:
        second.close()


def test_a_muted_member_who_joins_again_loses_the_mute_but_must_be_accepted_again(relay_stack, people):
    owner, user = people(relay_stack.a, "owner"), people(relay_stack.b)
    group_id = create(owner, "strict_private")
    make_muted(owner, user, group_id)
    assert user.ok("join_group", group_id=group_id) == {"group_id": group_id, "status": "pending"}
    assert user.refused("send", group_id=group_id, message="hi") == PENDING
    owner.ok("accept_member", group_id=group_id, target=user.user)
    assert user.ok("send", group_id=group_id, message="hi")["status"] == "relayed"


# ---------------------------------------------------------------------------- accept


def test_any_active_member_may_accept_in_a_private_group(relay_stack, people):
    owner, member, newcomer = people(relay_stack.a, "owner"), people(relay_stack.b), people(relay_stack.a)
    group_id = create(owner, "private")
    make_active(owner, member, group_id)
    make_pending(newcomer, group_id)
    assert member.ok("accept_member", group_id=group_id, target=newcomer.user) == \
        {"group_id": group_id, "target": newcomer.user, "status": "active"}
    assert status_of(owner, group_id, newcomer.user) == "active"


@pytest.mark.parametrize("group_type", ["private", "strict_private"])
def test_a_pending_member_may_not_accept(relay_stack, people, group_type):
    owner, waiting, other = people(relay_stack.a, "owner"), people(relay_stack.b), people(relay_stack.a)
    group_id = create(owner, group_type)
    make_pending(waiting, group_id)
    make_pending(other, group_id)
    assert waiting.refused("accept_member", group_id=group_id, target=other.user) == NOT_ADMIN
    assert status_of(owner, group_id, other.user) == "pending"


def test_only_an_active_admin_may_accept_in_a_strict_private_group(relay_stack, people):
    owner, member, newcomer = people(relay_stack.a, "owner"), people(relay_stack.b), people(relay_stack.b)
    group_id = create(owner, "strict_private")
    make_active(owner, member, group_id)
    make_pending(newcomer, group_id)
    assert member.refused("accept_member", group_id=group_id, target=newcomer.user) == NOT_ADMIN
    assert status_of(owner, group_id, newcomer.user) == "pending"
    assert owner.ok("accept_member", group_id=group_id, target=newcomer.user) == \
        {"group_id": group_id, "target": newcomer.user, "status": "active"}


def test_a_muted_admin_may_not_accept_unmute_itself_or_delete(relay_stack, people):
    owner, newcomer = people(relay_stack.a, "owner"), people(relay_stack.b)
    group_id = create(owner, "strict_private")
    assert owner.ok("mute_member", group_id=group_id, target=owner.user)["status"] == "muted"  # its own choice
    make_pending(newcomer, group_id)
    assert owner.refused("accept_member", group_id=group_id, target=newcomer.user) == NOT_ADMIN
    assert owner.refused("unmute_member", group_id=group_id, target=owner.user) == NOT_ADMIN
    assert owner.refused("delete_group", group_id=group_id) == NOT_ADMIN


@pytest.mark.parametrize("group_type", ["public", "private", "strict_private"])
def test_accept_member_errors_in_the_specified_order(relay_stack, people, group_type):
    owner, member, outsider = people(relay_stack.a, "owner"), people(relay_stack.b), people(relay_stack.b)
    group_id = create(owner, group_type)
    make_active(owner, member, group_id)
    assert owner.refused("accept_member", group_id=new_group_id(), target=member.user) == GROUP_NOT_FOUND
    # the actor is checked before the target
    assert outsider.refused("accept_member", group_id=group_id, target=who("nobody")) == NOT_A_MEMBER
    assert owner.refused("accept_member", group_id=group_id, target=outsider.user) == TARGET_NOT_MEMBER
    assert owner.refused("accept_member", group_id=group_id, target=member.user) == NOT_PENDING


# ---------------------------------------------------------------------------- mute / unmute


@pytest.mark.parametrize("group_type", ["public", "private"])
def test_mute_and_unmute_are_refused_outside_strict_private_groups(relay_stack, people, group_type):
    owner, member = people(relay_stack.a, "owner"), people(relay_stack.b)
    group_id = create(owner, group_type)
    make_active(owner, member, group_id)
    assert owner.refused("mute_member", group_id=group_id, target=member.user) == NOT_STRICT
    assert owner.refused("unmute_member", group_id=group_id, target=member.user) == NOT_STRICT
    assert status_of(owner, group_id, member.user) == "active"
    # the existence check comes first
    assert owner.refused("mute_member", group_id=new_group_id(), target=member.user) == GROUP_NOT_FOUND
    assert owner.refused("unmute_member", group_id=new_group_id(), target=member.user) == GROUP_NOT_FOUND


def test_only_an_active_admin_may_mute_and_unmute(relay_stack, people):
    owner = people(relay_stack.a, "owner")
    member, target, waiting, outsider = (people(relay_stack.b), people(relay_stack.a), people(relay_stack.b),
                                         people(relay_stack.a))
    group_id = create(owner, "strict_private")
    make_active(owner, member, group_id)
    make_active(owner, target, group_id)
    make_pending(waiting, group_id)
    for actor in (member, waiting, outsider):
        assert actor.refused("mute_member", group_id=group_id, target=target.user) == NOT_ADMIN
    assert status_of(owner, group_id, target.user) == "active"
    assert owner.ok("mute_member", group_id=group_id, target=target.user) == \
        {"group_id": group_id, "target": target.user, "status": "muted"}
    for actor in (member, waiting, outsider):
        assert actor.refused("unmute_member", group_id=group_id, target=target.user) == NOT_ADMIN
    assert status_of(owner, group_id, target.user) == "muted"
    assert owner.ok("unmute_member", group_id=group_id, target=target.user) == \
        {"group_id": group_id, "target": target.user, "status": "active"}
    assert status_of(owner, group_id, target.user) == "active"


def test_mute_and_unmute_target_errors(relay_stack, people):
    owner, active, waiting, muted = (people(relay_stack.a, "owner"), people(relay_stack.b), people(relay_stack.b),
                                     people(relay_stack.a))
    group_id = create(owner, "strict_private")
    make_active(owner, active, group_id)
    make_pending(waiting, group_id)
    make_muted(owner, muted, group_id)
    nobody = who("nobody")
    assert owner.refused("mute_member", group_id=group_id, target=nobody) == TARGET_NOT_MEMBER
    assert owner.refused("mute_member", group_id=group_id, target=waiting.user) == CANNOT_MUTE
    assert owner.refused("mute_member", group_id=group_id, target=muted.user) == CANNOT_MUTE
    assert owner.refused("unmute_member", group_id=group_id, target=nobody) == TARGET_NOT_MEMBER
    assert owner.refused("unmute_member", group_id=group_id, target=active.user) == NOT_MUTED
    assert owner.refused("unmute_member", group_id=group_id, target=waiting.user) == NOT_MUTED
    members = info(owner, group_id)["members"]
    assert {u: members[u]["status"] for u in (active.user, waiting.user, muted.user)} == \
        {active.user: "active", waiting.user: "pending", muted.user: "muted"}


# ---------------------------------------------------------------------------- send permissions


@pytest.mark.parametrize("group_type", ["public", "private", "strict_private"])
def test_an_active_member_may_send_in_every_group_type(relay_stack, people, group_type):
    owner, member = people(relay_stack.a, "owner"), people(relay_stack.b)
    group_id = create(owner, group_type)
    make_active(owner, member, group_id)
    assert member.ok("send", group_id=group_id, message="hello") == {"status": "relayed", "recipients_count": 2}


@pytest.mark.parametrize("group_type", ["private", "strict_private"])
def test_a_pending_member_may_not_send(relay_stack, people, group_type):
    owner, waiting = people(relay_stack.a, "owner"), people(relay_stack.b)
    group_id = create(owner, group_type)
    make_pending(waiting, group_id)
    assert waiting.refused("send", group_id=group_id, message="let me in") == PENDING
    assert owner.quiet()


def test_a_muted_member_may_not_send_until_unmuted(relay_stack, people):
    owner, muted = people(relay_stack.a, "owner"), people(relay_stack.b)
    group_id = create(owner, "strict_private")
    make_muted(owner, muted, group_id)
    assert muted.refused("send", group_id=group_id, message="psst") == MUTED
    assert owner.quiet()
    owner.ok("unmute_member", group_id=group_id, target=muted.user)
    assert muted.ok("send", group_id=group_id, message="thanks")["status"] == "relayed"
    assert owner.received()["result"]["message"] == "thanks"


def test_send_refuses_a_missing_group_and_a_non_member(relay_stack, people):
    owner, outsider = people(relay_stack.a, "owner"), people(relay_stack.b)
    group_id = create(owner, "public")
    assert outsider.refused("send", group_id=new_group_id(), message="hi") == GROUP_NOT_FOUND
    assert outsider.refused("send", group_id=group_id, message="hi") == NOT_A_MEMBER
    assert owner.quiet()


def test_recipients_count_counts_active_and_muted_members_but_not_pending_ones(relay_stack, people):
    owner = people(relay_stack.a, "owner")
    active, muted, waiting = people(relay_stack.b), people(relay_stack.b), people(relay_stack.a)
    group_id = create(owner, "strict_private")
    make_active(owner, active, group_id)
    make_muted(owner, muted, group_id)
    make_pending(waiting, group_id)
    assert active.ok("send", group_id=group_id, message="count") == {"status": "relayed", "recipients_count": 3}


# ---------------------------------------------------------------------------- create / delete / leave / info


def test_create_group_makes_the_creator_an_active_connected_admin(relay_stack, people):
    owner = people(relay_stack.a, "owner")
    group_id = create(owner, "private")
    group = info(owner, group_id)
    assert set(group) == {"group_id", "group_type", "members"}
    assert (group["group_id"], group["group_type"]) == (group_id, "private")
    assert list(group["members"]) == [owner.user]
    creator = group["members"][owner.user]
    assert set(creator) == {"status", "roles", "joined_at", "connected"}
    assert (creator["status"], creator["roles"], creator["connected"]) == ("active", ["admin"], True)
    assert JOINED_AT.fullmatch(creator["joined_at"]), creator


def test_create_group_refuses_an_existing_group_id_from_any_gateway(relay_stack, people):
    owner, other = people(relay_stack.a, "owner"), people(relay_stack.b)
    group_id = create(owner, "public")
    assert other.refused("create_group", group_id=group_id, group_type="private") == GROUP_EXISTS
    assert owner.refused("create_group", group_id=group_id, group_type="public") == GROUP_EXISTS
    group = info(owner, group_id)
    assert (group["group_type"], list(group["members"])) == ("public", [owner.user])


NEW_ID = "<a new group id>"


def id_of_bytes(size: int) -> str:
    """A new group id of exactly ``size`` UTF-8 bytes, mostly two-byte characters."""
    head = uuid.uuid4().hex  # 32 bytes
    return head + "é" * ((size - 32) // 2) + "x" * ((size - 32) % 2)


@pytest.mark.parametrize("args", [
    {},
    {"group_type": "public"},
    {"group_id": "", "group_type": "public"},
    {"group_id": 42, "group_type": "public"},
    {"group_id": ["a"], "group_type": "public"},
    {"group_id": NEW_ID, "group_type": "secret"},
    {"group_id": NEW_ID},
], ids=["nothing", "no group_id", "empty group_id", "number group_id", "list group_id", "unknown group_type",
        "no group_type"])
def test_create_group_refuses_invalid_arguments(relay_stack, people, args):
    owner = people(relay_stack.a, "owner")
    if args.get("group_id") == NEW_ID:
        args = {**args, "group_id": new_group_id()}
    error = owner.refused("create_group", **args)
    assert error.startswith(INVALID), error
    if isinstance(args.get("group_id"), str) and args["group_id"]:  # and nothing was created
        assert owner.refused("group_info", group_id=args["group_id"]) == GROUP_NOT_FOUND


def test_create_group_accepts_a_group_id_of_200_bytes_and_refuses_201(relay_stack, people):
    owner = people(relay_stack.a, "owner")
    longest, too_long = id_of_bytes(200), id_of_bytes(201)
    assert len(too_long) < 200 < len(too_long.encode())  # bytes are counted, not characters
    assert owner.refused("create_group", group_id=too_long, group_type="public").startswith(INVALID)
    assert owner.ok("create_group", group_id=longest, group_type="public")["status"] == "created"
    assert info(owner, longest)["group_id"] == longest


def test_delete_group_is_for_an_active_admin_only(relay_stack, people):
    owner, member, outsider = people(relay_stack.a, "owner"), people(relay_stack.b), people(relay_stack.b)
    group_id = create(owner, "private")
    make_active(owner, member, group_id)
    assert owner.refused("delete_group", group_id=new_group_id()) == GROUP_NOT_FOUND
    assert outsider.refused("delete_group", group_id=group_id) == NOT_A_MEMBER
    assert member.refused("delete_group", group_id=group_id) == NOT_ADMIN
    assert info(owner, group_id)["group_id"] == group_id
    assert owner.ok("delete_group", group_id=group_id) == {"group_id": group_id, "status": "deleted"}
    assert member.refused("group_info", group_id=group_id) == GROUP_NOT_FOUND
    assert member.refused("send", group_id=group_id, message="anyone?") == GROUP_NOT_FOUND
    assert owner.refused("delete_group", group_id=group_id) == GROUP_NOT_FOUND
    # the id is free again
    assert outsider.ok("create_group", group_id=group_id, group_type="public")["status"] == "created"


def test_leave_group_removes_the_member_and_its_deliveries(relay_stack, people):
    owner, member, outsider = people(relay_stack.a, "owner"), people(relay_stack.b), people(relay_stack.b)
    group_id = create(owner, "public")
    make_active(owner, member, group_id)
    assert owner.refused("leave_group", group_id=new_group_id()) == GROUP_NOT_FOUND
    assert outsider.refused("leave_group", group_id=group_id) == NOT_A_MEMBER
    assert member.ok("leave_group", group_id=group_id) == {"group_id": group_id, "status": "left"}
    assert member.user not in info(owner, group_id)["members"]
    assert member.refused("leave_group", group_id=group_id) == NOT_A_MEMBER
    assert owner.ok("send", group_id=group_id, message="still there?") == {"status": "relayed",
                                                                          "recipients_count": 1}
    assert member.quiet()
    assert member.refused("send", group_id=group_id, message="me?") == NOT_A_MEMBER


def test_group_info_lists_every_member_with_status_roles_joined_at_and_connected(relay_stack, people):
    owner = people(relay_stack.a, "owner")
    active, waiting, muted = people(relay_stack.b), people(relay_stack.a), people(relay_stack.b)
    group_id = create(owner, "strict_private")
    make_active(owner, active, group_id)
    make_pending(waiting, group_id)
    make_muted(owner, muted, group_id)
    group = active.ok("group_info", group_id=group_id)  # asked through the other gateway
    assert (group["group_id"], group["group_type"]) == (group_id, "strict_private")
    expected = {owner.user: ("active", ["admin"]), active.user: ("active", ["member"]),
                waiting.user: ("pending", ["member"]), muted.user: ("muted", ["member"])}
    assert {user: (m["status"], m["roles"]) for user, m in group["members"].items()} == expected
    for member in group["members"].values():
        assert set(member) == {"status", "roles", "joined_at", "connected"}, member
        assert member["connected"] is True, member
        assert JOINED_AT.fullmatch(member["joined_at"]), member
    assert group["members"][owner.user]["joined_at"] <= group["members"][active.user]["joined_at"]


@pytest.mark.parametrize("group_type", ["private", "strict_private"])
def test_group_info_of_a_private_group_is_for_members_only(relay_stack, people, group_type):
    owner, waiting, outsider = people(relay_stack.a, "owner"), people(relay_stack.b), people(relay_stack.b)
    group_id = create(owner, group_type)
    make_pending(waiting, group_id)
    assert outsider.refused("group_info", group_id=group_id) == NOT_A_MEMBER
    assert set(info(waiting, group_id)["members"]) == {owner.user, waiting.user}


def test_group_info_of_a_public_group_is_for_any_caller(relay_stack, people):
    owner, outsider = people(relay_stack.a, "owner"), people(relay_stack.b)
    group_id = create(owner, "public")
    group = info(outsider, group_id)
    assert (group["group_type"], list(group["members"])) == ("public", [owner.user])
    assert outsider.refused("group_info", group_id=new_group_id()) == GROUP_NOT_FOUND


# ---------------------------------------------------------------------------- identity

REQUESTS = [("create_group", {"group_type": "public"}), ("delete_group", {}), ("join_group", {}),
            ("leave_group", {}), ("accept_member", {"target": "someone"}), ("mute_member", {"target": "someone"}),
            ("unmute_member", {"target": "someone"}), ("send", {"message": "hi"}), ("group_info", {})]


def test_anonymous_callers_on_the_public_endpoint_get_authentication_required(relay_stack, people):
    owner = people(relay_stack.a, "owner")
    group_id = create(owner, "public")
    anonymous = people(relay_stack.a, path="/ws/public", anonymous=True)
    for request_type, args in REQUESTS:
        assert anonymous.refused(request_type, group_id=group_id, **args) == AUTH_REQUIRED, request_type
    new_id = new_group_id()
    assert anonymous.refused("create_group", group_id=new_id, group_type="public") == AUTH_REQUIRED
    assert owner.refused("group_info", group_id=new_id) == GROUP_NOT_FOUND
    assert list(info(owner, group_id)["members"]) == [owner.user]
    assert owner.quiet()


def test_a_connection_without_a_token_gets_authentication_required(relay_stack, people):
    owner = people(relay_stack.a, "owner")
    group_id = create(owner, "public")
    anonymous = people(relay_stack.b, anonymous=True)
    for request_type in ("join_group", "group_info"):
        assert anonymous.refused(request_type, group_id=group_id) == AUTH_REQUIRED


def test_a_caller_with_a_token_on_the_public_endpoint_may_use_groups(relay_stack, people):
    owner = people(relay_stack.a, "owner")
    group_id = create(owner, "public")
    guest = people(relay_stack.a, "guest", path="/ws/public")
    assert guest.ok("join_group", group_id=group_id) == {"group_id": group_id, "status": "active"}
    assert guest.ok("send", group_id=group_id, message="hello")["recipients_count"] == 2
    assert owner.received()["result"]["from_user_id"] == guest.user


# ---------------------------------------------------------------------------- delivery


def test_a_message_sent_on_one_gateway_reaches_members_on_both_with_the_relay_frame(relay_stack, people):
    owner, on_b, on_a = people(relay_stack.a, "owner"), people(relay_stack.b), people(relay_stack.a)
    group_id = create(owner, "private")
    make_active(owner, on_b, group_id)
    make_active(owner, on_a, group_id)
    message = {"text": "héllo", "n": [1, 2.5, None, True]}
    frame = on_b.ask("send", {"group_id": group_id, "message": message}, request_id="sent-on-b")
    assert frame["result"] == {"status": "relayed", "recipients_count": 3}
    for member in (owner, on_a):
        assert_relay_frame(member.received(), "sent-on-b", group_id, on_b.user, message)
    assert_relay_frame(on_b.received(), "sent-on-b", group_id, on_b.user, message)
    for member in (owner, on_a, on_b):
        assert member.quiet(0.2), "exactly one copy each"


def test_every_member_gets_the_same_frame_as_the_senders_copy(relay_stack, people):
    owner, member = people(relay_stack.a, "owner"), people(relay_stack.b)
    group_id = create(owner, "public")
    make_active(owner, member, group_id)
    owner.ask("send", {"group_id": group_id, "message": "same"}, request_id="same-frame")
    assert owner.received() == member.received()


def test_the_sender_gets_its_sync_result_first_then_its_own_copy(relay_stack, people):
    owner, member = people(relay_stack.a, "owner"), people(relay_stack.b)
    group_id = create(owner, "public")
    make_active(owner, member, group_id)
    member.ws.send(json.dumps(request("send", {"group_id": group_id, "message": "mine"}, request_id="order",
                                      service="relay")))
    first, second = (json.loads(member.ws.recv(timeout=5)) for _ in range(2))
    assert first == {"request_id": "order", "result": {"status": "relayed", "recipients_count": 2},
                     "success": True, "error": None, "async": False, "has_more": False, "can_retry": False}
    assert_relay_frame(second, "order", group_id, member.user, "mine")
    assert_relay_frame(owner.received(), "order", group_id, member.user, "mine")


@pytest.mark.parametrize("message", ["text", 42, 3.5, None, True, [], [1, "a", {"b": None}],
                                     {"nested": {"ü": ["é", 1, False]}}],
                         ids=["string", "integer", "float", "null", "boolean", "empty list", "list", "map"])
def test_any_json_value_is_relayed_unchanged(relay_stack, people, message):
    owner, member = people(relay_stack.a, "owner"), people(relay_stack.b)
    group_id = create(owner, "public")
    make_active(owner, member, group_id)
    assert owner.ok("send", group_id=group_id, message=message)["status"] == "relayed"
    assert_relay_frame(member.received(), None, group_id, owner.user, message)


def test_send_without_a_message_is_invalid_arguments(relay_stack, people):
    owner = people(relay_stack.a, "owner")
    group_id = create(owner, "public")
    assert owner.refused("send", group_id=group_id).startswith(INVALID)
    assert owner.quiet()


def test_pending_members_receive_nothing_until_accepted(relay_stack, people):
    owner, active, waiting = people(relay_stack.a, "owner"), people(relay_stack.b), people(relay_stack.b)
    group_id = create(owner, "private")
    make_active(owner, active, group_id)
    make_pending(waiting, group_id)
    owner.ok("send", group_id=group_id, message="members only")
    assert active.received()["result"]["message"] == "members only"  # same gateway: delivered by now
    assert waiting.quiet()
    active.ok("accept_member", group_id=group_id, target=waiting.user)
    owner.ok("send", group_id=group_id, message="welcome")
    assert_relay_frame(waiting.received(), None, group_id, owner.user, "welcome")


def test_a_muted_member_still_receives(relay_stack, people):
    owner, muted = people(relay_stack.a, "owner"), people(relay_stack.b)
    group_id = create(owner, "strict_private")
    make_muted(owner, muted, group_id)
    assert owner.ok("send", group_id=group_id, message="listen") == {"status": "relayed", "recipients_count": 2}
    assert_relay_frame(muted.received(), None, group_id, owner.user, "listen")


# ---------------------------------------------------------------------------- limits


def test_a_message_over_the_configured_size_limit_is_refused_and_one_at_it_is_relayed(relay_stack, people):
    owner, member = people(relay_stack.small, "owner"), people(relay_stack.a)
    group_id = create(owner, "public")
    make_active(owner, member, group_id)
    at_limit = "x" * (SMALL_LIMIT - 2)  # with its quotes: SMALL_LIMIT bytes of JSON
    assert owner.ok("send", group_id=group_id, message=at_limit)["status"] == "relayed"
    assert member.received()["result"]["message"] == at_limit
    over, size = too_large(SMALL_LIMIT)
    assert owner.refused("send", group_id=group_id, message=over) == \
        f"Invalid arguments: message is {size} bytes, more than the relay limit of {SMALL_LIMIT}"
    # the size of the JSON encoding, not the number of characters
    wide = "é" * (SMALL_LIMIT // 2)  # fewer characters than the limit, more bytes
    assert re.fullmatch(rf"Invalid arguments: message is \d+ bytes, more than the relay limit of {SMALL_LIMIT}",
                        owner.refused("send", group_id=group_id, message=wide))
    assert member.quiet()


def test_the_default_message_size_limit_is_65536_bytes(relay_stack, people):
    owner, member = people(relay_stack.a, "owner"), people(relay_stack.b)
    group_id = create(owner, "public")
    make_active(owner, member, group_id)
    over, size = too_large(DEFAULT_LIMIT)
    assert owner.refused("send", group_id=group_id, message=over) == \
        f"Invalid arguments: message is {size} bytes, more than the relay limit of {DEFAULT_LIMIT}"
    assert owner.ok("send", group_id=group_id, message="x" * (DEFAULT_LIMIT - 2))["status"] == "relayed"
    assert len(member.received()["result"]["message"]) == DEFAULT_LIMIT - 2


def test_membership_errors_come_before_the_size_limit(relay_stack, people):
    owner, waiting, muted, outsider = (people(relay_stack.small, "owner"), people(relay_stack.a),
                                       people(relay_stack.b), people(relay_stack.small))
    group_id = create(owner, "strict_private")
    make_pending(waiting, group_id)
    make_muted(owner, muted, group_id)
    over, _ = too_large(SMALL_LIMIT)
    assert outsider.refused("send", group_id=new_group_id(), message=over) == GROUP_NOT_FOUND
    assert outsider.refused("send", group_id=group_id, message=over) == NOT_A_MEMBER
    assert waiting.refused("send", group_id=group_id, message=over) == PENDING
    assert muted.refused("send", group_id=group_id, message=over) == MUTED


def test_a_connection_may_be_attached_to_at_most_max_groups(relay_stack, people):
    host = people(relay_stack.a, "host")
    joinable = [create(host, "public") for _ in range(2)]
    user = people(relay_stack.small)
    created = create(user, "public")
    assert user.ok("join_group", group_id=joinable[0])["status"] == "active"
    too_many = f"Too many groups on this connection (at most {SMALL_GROUPS})"
    new_id = new_group_id()
    assert user.refused("create_group", group_id=new_id, group_type="public") == too_many
    assert host.refused("group_info", group_id=new_id) == GROUP_NOT_FOUND
    assert user.refused("join_group", group_id=joinable[1]) == too_many
    assert user.user not in info(host, joinable[1])["members"]
    # per connection: the same user's second connection has room of its own
    second = Member(relay_stack.small, user.user)
    try:
        assert second.ok("create_group", group_id=new_id, group_type="public")["status"] == "created"
    finally:
        second.close()
    # leaving makes room again
    user.ok("leave_group", group_id=joinable[0])
    assert user.ok("join_group", group_id=joinable[1])["status"] == "active"
    assert set(info(host, created)["members"]) == {user.user}


def test_a_deleted_group_no_longer_counts_toward_the_connection_cap(relay_stack, people):
    host = people(relay_stack.a, "host")
    doomed, kept, later = (create(host, "public") for _ in range(3))
    user = people(relay_stack.small)
    for group_id in (doomed, kept):
        assert user.ok("join_group", group_id=group_id)["status"] == "active"
    host.ok("delete_group", group_id=doomed)
    assert user.ok("join_group", group_id=later)["status"] == "active"


@pytest.mark.parametrize("suffix", [":status", ":roles", ":conn", ":joined"])
def test_a_group_id_that_extends_another_group_id_is_a_group_of_its_own(relay_stack, people, suffix):
    owner, other = people(relay_stack.a, "owner"), people(relay_stack.b, "other")
    base = new_group_id()
    assert other.ok("create_group", group_id=base + suffix, group_type="public")["status"] == "created"
    assert owner.ok("create_group", group_id=base, group_type="private")["status"] == "created"
    shorter, longer = info(owner, base), info(other, base + suffix)
    assert (shorter["group_type"], set(shorter["members"])) == ("private", {owner.user})
    assert (longer["group_type"], set(longer["members"])) == ("public", {other.user})
    base = new_group_id()  # the other way round
    assert owner.ok("create_group", group_id=base, group_type="private")["status"] == "created"
    assert other.ok("create_group", group_id=base + suffix, group_type="public")["status"] == "created"


# ---------------------------------------------------------------------------- workers


def test_a_worker_posts_into_a_group_and_members_on_both_gateways_receive_it_from_bot(relay_stack, people):
    owner, on_b, waiting = people(relay_stack.a, "owner"), people(relay_stack.b), people(relay_stack.b)
    group_id = create(owner, "private")
    make_active(owner, on_b, group_id)
    make_pending(waiting, group_id)
    frame = owner.ask("announce", {"group_id": group_id, "text": "from the worker"}, service="relaybot",
                      request_id="announce-1")
    assert (frame["success"], frame["error"], frame["result"]) == (True, None, 2), frame
    copies = [owner.received(), on_b.received()]
    for copy in copies:
        assert_relay_frame(copy, None, group_id, "bot", {"text": "from the worker"})
        assert re.fullmatch(r"relay-[0-9a-f]+", copy["request_id"]), copy
    assert copies[0]["request_id"] == copies[1]["request_id"]
    assert waiting.quiet()


def test_a_worker_posting_into_a_missing_group_gets_group_not_found(relay_stack, people):
    caller = people(relay_stack.b)
    frame = caller.ask("announce_missing", {"text": "anyone?"}, service="relaybot")
    assert frame["success"] is False and frame["result"] is None, frame
    assert frame["error"] == "Internal Server Error: RelayError: Group not found", frame
