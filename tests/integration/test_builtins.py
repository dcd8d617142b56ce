"""The built-in `gateway` service."""

from __future__ import annotations

from .conftest import call, request


def _listing(ws) -> dict:
    frame = call(ws, request("functions", service="gateway", request_id="f"))
    assert frame["success"] is True and frame["request_id"] == "f"
    return {(f["service"], f["request_type"], f["version"]): f for f in frame["result"]}


def test_ping(ws):
    assert call(ws, request("ping", service="gateway", request_id="p")) == {
        "request_id": "p", "result": "pong", "success": True, "error": None,
        "async": False, "has_more": False, "can_retry": False}


def test_unknown_builtin(ws):
    assert call(ws, request("reboot", service="gateway"))["error"] == "unsupported function: reboot version latest"


def test_functions_lists_argument_schemas_and_versions(ws):
    listing = _listing(ws)
    add = listing[("sample", "add", None)]
    assert add["arg_types"] == {"a": {"type": "num", "allow_nil": False}, "b": {"type": "num", "allow_nil": False}}
    assert add["arg_orders"] == ["a", "b"] and add["response_type"] == "sync" and add["available"] is True
    assert listing[("sample", "echo", None)]["arg_orders"] == "map"
    assert listing[("sample", "ver", "2.0.0")]["latest"] is True
    assert listing[("sample", "ver", "1.0.0")]["latest"] is False
    assert ("sample", "ver", "3.0.0") not in listing  # disabled


def test_functions_hides_what_the_caller_may_not_call(gateway):
    with gateway.connect(user="viewer", roles=("viewer",)) as ws:
        listing = _listing(ws)
    assert ("sample", "admins_only", None) not in listing
    assert ("sample", "members_only", None) in listing
    with gateway.connect(user="root", roles=("admin",)) as ws:
        assert ("sample", "admins_only", None) in _listing(ws)


def test_a_map_function_whose_permission_key_lives_inside_a_map_argument_registers(ws):
    """Reference §5.2: {"arg": "user_id"} may name a key of a map argument; the worker
    starts and the function is registered (it used to refuse the whole module)."""
    mine = _listing(ws)[("sample", "mine", None)]
    assert mine["arg_orders"] == "map" and mine["arg_types"]["filter"]["type"] == "map"
