"""Relay groups' cleanup with a real Redis and gateway processes (GENAPI_RELAY_TTL=3): a
closed connection leaves its groups at once (a creator stays, detached, and re-attaches with
join_group); the members of a SIGKILLed gateway are removed once its heartbeat expires; groups
survive a restart of every gateway."""

from __future__ import annotations

import time

import pytest

from . import test_relay
from .conftest import Stack, _databases
from .test_relay import Member, create, info, make_active, make_muted, make_pending, who

people = test_relay.people  # the same fixture: a user per call, closed after the test

TTL = 3  # GENAPI_RELAY_TTL of every gateway here
CLOSE_DEADLINE = 2.0  # "at once": seconds a closed connection may take to leave its groups
EXPIRY_DEADLINE = 15.0  # a killed gateway's members are gone within TTL + a few seconds
MUTED = "You are muted and cannot send messages"
GROUP_EXISTS = "Group already exists"


def eventually(check, deadline: float, what: str) -> float:
    """Poll ``check`` until it is true; the seconds it took (fails after ``deadline``)."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > deadline:
            raise AssertionError(f"{what}: not within {deadline} s")
        time.sleep(0.05)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def cleanup_stack(redis_server, tmp_path_factory):
    """Gateways ``a`` and ``b`` (relay TTL 3 s) on a database of their own."""
    stack = Stack(f"redis://127.0.0.1:{redis_server}/{next(_databases)}", tmp_path_factory.mktemp("relaycleanup"))
    try:
        stack.a = stack.start_gateway(GENAPI_RELAY_TTL=str(TTL))
        stack.b = stack.start_gateway(GENAPI_RELAY_TTL=str(TTL))
        yield stack
    finally:
        stack.stop_all()


def test_closing_a_members_socket_removes_it_from_every_group_at_once(cleanup_stack, people):
    owner, leaver, stayer = people(cleanup_stack.a, "owner"), people(cleanup_stack.b), people(cleanup_stack.b)
    groups = [create(owner, "public"), create(owner, "private"), create(owner, "strict_private")]
    make_active(owner, leaver, groups[0])
    make_pending(leaver, groups[1])
    make_muted(owner, leaver, groups[2])
    for group_id in groups:
        make_active(owner, stayer, group_id)
    leaver.close()
    eventually(lambda: all(leaver.user not in info(owner, g)["members"] for g in groups), CLOSE_DEADLINE,
               "the closed connection's memberships removed")
    for group_id in groups:
        members = info(owner, group_id)["members"]
        assert set(members) == {owner.user, stayer.user}
        assert members[stayer.user]["connected"] is True
    assert owner.ok("send", group_id=groups[2], message="who is left?") == {"status": "relayed",
                                                                          "recipients_count": 2}
    assert stayer.received()["result"]["message"] == "who is left?"


def test_a_creator_who_disconnects_stays_detached_and_reattaches_with_join_group(cleanup_stack, people):
    creator, member = people(cleanup_stack.b, "creator"), people(cleanup_stack.a)
    group_id = create(creator, "private")
    make_active(creator, member, group_id)
    joined_at = info(member, group_id)["members"][creator.user]["joined_at"]
    creator.close()
    eventually(lambda: info(member, group_id)["members"][creator.user]["connected"] is False, CLOSE_DEADLINE,
               "the creator detached")
    detached = info(member, group_id)["members"][creator.user]
    assert detached == {"status": "active", "roles": ["admin"], "joined_at": joined_at, "connected": False}
    # still a member (counted), but nobody to deliver to
    assert member.ok("send", group_id=group_id, message="anyone?")["recipients_count"] == 2

    back = people(cleanup_stack.a, user=creator.user)  # a new connection, on the other gateway
    assert back.ok("join_group", group_id=group_id) == {"group_id": group_id, "status": "active"}
    assert info(member, group_id)["members"][creator.user] == \
        {"status": "active", "roles": ["admin"], "joined_at": joined_at, "connected": True}
    assert back.quiet(), "messages sent while detached are not replayed"
    member.ok("send", group_id=group_id, message="welcome back")
    assert back.received()["result"]["message"] == "welcome back"


def test_a_creator_who_left_and_came_back_is_removed_on_disconnect_like_any_member(cleanup_stack, people):
    creator, watcher = people(cleanup_stack.a, "creator"), people(cleanup_stack.b)
    group_id = create(creator, "public")
    watcher.ok("join_group", group_id=group_id)
    creator.ok("leave_group", group_id=group_id)
    assert creator.ok("join_group", group_id=group_id) == {"group_id": group_id, "status": "active"}
    assert info(watcher, group_id)["members"][creator.user]["roles"] == ["member"]
    creator.close()
    eventually(lambda: creator.user not in info(watcher, group_id)["members"], CLOSE_DEADLINE,
               "the former creator left the group with its connection")


def test_members_of_a_killed_gateway_are_removed_within_the_ttl(cleanup_stack, people):
    doomed = cleanup_stack.start_gateway(GENAPI_RELAY_TTL=str(TTL))
    try:
        owner, survivor = people(cleanup_stack.a, "owner"), people(cleanup_stack.b)
        public, private = create(owner, "public"), create(owner, "private")
        victims = [people(doomed) for _ in range(2)]
        for group_id in (public, private):
            make_active(owner, survivor, group_id)
            for victim in victims:
                make_active(owner, victim, group_id)
        doomed_creator = people(doomed, "creator")
        own_group = create(doomed_creator, "public")
        make_active(doomed_creator, survivor, own_group)

        doomed.process.kill()  # SIGKILL: no goodbye, its connections never close cleanly
        doomed.process.wait(10)
        # sending meanwhile still works, whatever the dead gateway's members
        assert survivor.ok("send", group_id=public, message="still here")["status"] == "relayed"
        assert owner.received()["result"]["message"] == "still here"

        gone = {victim.user for victim in victims}
        took = eventually(lambda: not gone & (set(info(survivor, public)["members"])
                                              | set(info(survivor, private)["members"])),
                          EXPIRY_DEADLINE, "the killed gateway's members removed")
        print(f"killed gateway's members removed after {took:.1f} s (TTL {TTL} s)")
        for group_id in (public, private):
            members = info(survivor, group_id)["members"]
            assert set(members) == {owner.user, survivor.user}
            assert all(m["connected"] for m in members.values()), members
        assert owner.ok("send", group_id=private, message="after") == {"status": "relayed", "recipients_count": 2}
        # the killed gateway's creator stays, detached
        eventually(lambda: info(survivor, own_group)["members"][doomed_creator.user]["connected"] is False,
                   EXPIRY_DEADLINE, "the killed gateway's creator detached")
        assert info(survivor, own_group)["members"][doomed_creator.user]["status"] == "active"
        back = people(cleanup_stack.b, user=doomed_creator.user)
        assert back.ok("join_group", group_id=own_group) == {"group_id": own_group, "status": "active"}
        assert info(survivor, own_group)["members"][back.user]["connected"] is True
    finally:
        cleanup_stack.stop(doomed.process)


def test_groups_and_their_states_survive_a_restart_of_every_gateway(fresh_stack):
    gateways = [fresh_stack.start_gateway(GENAPI_RELAY_TTL=str(TTL)) for _ in range(2)]
    owner = Member(gateways[0], who("owner"))
    other = Member(gateways[1], who("other"))
    try:
        public, strict = create(owner, "public"), create(owner, "strict_private")
        private = create(other, "private")
        owner.ok("mute_member", group_id=strict, target=owner.user)  # an admin may mute itself
        before = {group_id: info(owner if group_id != private else other, group_id)
                  for group_id in (public, strict, private)}
    finally:
        owner.close()
        other.close()
    for gateway in gateways:
        fresh_stack.stop(gateway.process)

    gateways = [fresh_stack.start_gateway(GENAPI_RELAY_TTL=str(TTL)) for _ in range(2)]
    owner = Member(gateways[1], owner.user)
    other = Member(gateways[0], other.user)
    try:
        for group_id, was in before.items():
            creator = owner if group_id != private else other
            now = info(creator, group_id)
            assert (now["group_id"], now["group_type"]) == (was["group_id"], was["group_type"])
            assert now["members"] == {creator.user: {**was["members"][creator.user], "connected": False}}
        assert owner.ok("join_group", group_id=public) == {"group_id": public, "status": "active"}
        assert owner.ok("join_group", group_id=strict) == {"group_id": strict, "status": "muted"}
        assert other.ok("join_group", group_id=private) == {"group_id": private, "status": "active"}
        assert owner.refused("send", group_id=strict, message="hello?") == MUTED
        assert owner.refused("create_group", group_id=public, group_type="public") == GROUP_EXISTS
        assert other.ok("join_group", group_id=public) == {"group_id": public, "status": "active"}
        assert other.ok("send", group_id=public, message="after the restart") == \
            {"status": "relayed", "recipients_count": 2}
        assert owner.received()["result"]["message"] == "after the restart"
        assert info(other, public)["members"][owner.user]["connected"] is True
    finally:
        owner.close()
        other.close()
