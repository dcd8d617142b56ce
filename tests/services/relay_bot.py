"""The service of the relay tests (``genapi worker tests.services.relay_bot``): a worker
posting into relay groups with ``workers.relay.send``."""

from __future__ import annotations

from workers import GenApi

api = GenApi("relaybot")

#: a group no test creates
MISSING_GROUP = "relaybot-no-such-group"


@api.function("announce", arg_types={"group_id": "string", "text": "string"})
def announce(group_id, text):
    """Posts ``{"text": text}`` into the group as user ``bot``; returns the recipients count."""
    from workers import relay

    return relay.send(group_id, {"text": text}, from_user_id="bot")


@api.function("announce_missing", arg_types={"text": "string"})
def announce_missing(text):
    """Posts into a group that does not exist: ``RelayError("Group not found")`` propagates."""
    from workers import relay

    return relay.send(MISSING_GROUP, {"text": text}, from_user_id="bot")
