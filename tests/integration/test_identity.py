"""Identity comes from the signed token only; endpoints and permissions."""

from __future__ import annotations

import pytest

from gateway_app.auth import mint_token

from .conftest import SECRET, call, request


def test_identity_fields_sent_by_the_client_are_ignored(gateway):
    with gateway.connect(user="alice", roles=("admin",), device="phone-1") as ws:
        frame = call(ws, request("whoami", request_id="w", user_id="mallory", user_roles=["root"],
                                 roles=["root"]))
    assert frame["result"] == {"request_id": "w", "user_id": "alice", "device_id": "phone-1", "roles": ["admin"]}


def test_device_id_comes_from_the_request_when_the_token_has_none(gateway):
    with gateway.connect(user="bob", roles=()) as ws:
        frame = call(ws, request("whoami", device_id="tablet"))
    assert frame["result"]["device_id"] == "tablet"
    assert frame["result"]["user_id"] == "bob"


def _expired_token() -> str:
    from gateway_app.auth import _serializer

    return _serializer(SECRET).dumps({"sub": "alice", "roles": [], "exp": 1})


@pytest.mark.parametrize("token", [None, "forged.token", mint_token("another-secret", "alice"), "expired"],
                         ids=["no-token", "garbage", "wrong-secret", "expired"])
def test_unauthenticated_connections_get_authentication_required(gateway, token):
    kwargs = {"user": None} if token is None else {"token": _expired_token() if token == "expired" else token}
    with gateway.connect(**kwargs) as ws:
        frame = call(ws, request("add", {"a": 1, "b": 2}, request_id="anon"))
        assert frame["error"] == "Authentication required" and frame["request_id"] == "anon"
        assert call(ws, "garbage") == {"request_id": "unknown", "result": None, "success": False,
                                       "error": "Authentication required", "async": False,
                                       "has_more": False, "can_retry": False}
        assert call(ws, request("ping", service="gateway"))["error"] == "Authentication required"


def test_role_and_authentication_checks(gateway):
    with gateway.connect(user="carol", roles=("viewer",)) as ws:
        assert call(ws, request("admins_only"))["error"] == "Permission denied"
        assert call(ws, request("members_only"))["result"] == "members"
    with gateway.connect(user="dave", roles=("admin",)) as ws:
        assert call(ws, request("admins_only"))["result"] == "secret"


def test_public_endpoint_is_off_by_default(gateway):
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus):
        gateway.connect(path="/ws/public", user=None)


@pytest.fixture(scope="module")
def public_gateway(stack, sample_worker):
    gateway = stack.start_gateway(sample_worker, GENAPI_PUBLIC_WS="1")
    return gateway


def test_public_endpoint_serves_anonymous_callers(public_gateway):
    with public_gateway.connect(path="/ws/public", user=None) as ws:
        assert call(ws, request("add", {"a": 1, "b": 2}))["result"] == 3
        assert call(ws, request("members_only"))["error"] == "Permission denied"
        assert call(ws, request("whoami"))["result"]["user_id"] is None
    with public_gateway.connect(path="/ws/public", user="erin", roles=()) as ws:
        assert call(ws, request("members_only"))["result"] == "members"
    with public_gateway.connect(path="/ws", user=None) as ws:
        assert call(ws, request("add", {"a": 1, "b": 2}))["error"] == "Authentication required"
