"""gateway_app.catalogue: the listing of callable functions, and who asks for it over HTTP."""

from __future__ import annotations

from gateway_app import create_app, mint_token
from gateway_app.auth import Identity
from gateway_app.cache import Snapshot
from gateway_app.catalogue import entry, http_identity, listing
from workers.funconfig import load_funconfig
from workers.registry import NodeInfo
from workers.settings import Settings

SECRET = "unit-test-secret"


def config(request_type="f", **fields):
    return load_funconfig({"service": "svc", "request_type": request_type, **fields})


def snapshot(*configs, live=()) -> Snapshot:
    functions: dict = {}
    for c in configs:
        functions.setdefault((c.service, c.request_type), {})[c.version] = c
    nodes = {"n1": NodeInfo("n1", frozenset({"svc"}), frozenset(live), "n1.dq2", expires_ms=2**62)}
    return Snapshot(functions, nodes)


def test_entry_shape():
    c = config(arg_types={"a": "num", "s": {"type": "string", "enum": ["x"]}}, arg_orders=["s", "a"],
               description="Adds.", timeout="infinity")
    assert entry(c, latest=True, available=False) == {
        "service": "svc", "request_type": "f", "version": None, "latest": True, "response_type": "sync",
        "timeout": "infinity",
        "arg_types": {"a": {"type": "num", "allow_nil": False},
                      "s": {"type": "string", "allow_nil": False, "max_bytes": 3000, "enum": ["x"]}},
        "arg_orders": ["s", "a"],
        "args_schema": {"type": "object",
                        "properties": {"a": {"type": "number"},
                                       "s": {"type": "string", "maxLength": 3000, "x-max-bytes": 3000,
                                             "enum": ["x"]}},
                        "required": ["a", "s"], "additionalProperties": False},
        "description": "Adds.",
        "available": False,
    }


def test_listing_follows_versions_permissions_and_liveness():
    v1, v2 = config("ver", version="1.0.0"), config("ver", version="2.0.0")
    off = config("ver", version="3.0.0", disabled=True)
    admin = config("admin_only", check_permission={"role": ["admin"]})
    snap = snapshot(v1, v2, off, admin, live=[v2.task_name])
    anonymous = listing(snap, None)
    assert [(e["request_type"], e["version"], e["latest"], e["available"]) for e in anonymous] == [
        ("ver", "1.0.0", False, False), ("ver", "2.0.0", True, True)]
    admins = listing(snap, Identity("alice", ("admin",)))
    assert [e["request_type"] for e in admins] == ["admin_only", "ver", "ver"]


def test_the_schema_is_built_once_per_config():
    c = config(arg_types={"a": "num"})
    first, second = listing(snapshot(c), None), listing(snapshot(c), None)
    assert first[0]["args_schema"] is second[0]["args_schema"] is c.args_schema


def _gateway(**settings):
    app = create_app(Settings(secret_key=SECRET, **settings))
    return app, app.extensions["genapi"]


def test_identity_from_query_token_or_bearer_header():
    app, gateway = _gateway()
    token = mint_token(SECRET, "alice", ["staff"])
    for kwargs in ({"query_string": {"token": token}}, {"headers": {"Authorization": f"Bearer {token}"}},
                   {"headers": {"Authorization": f"bearer  {token} "}}):
        with app.test_request_context("/functions.json", **kwargs) as context:
            assert http_identity(gateway, context.request) == Identity("alice", ("staff",))
    for kwargs in ({}, {"headers": {"Authorization": "Basic abc"}}, {"headers": {"Authorization": "Bearer forged"}},
                   {"query_string": {"token": "forged"}, "headers": {"Authorization": f"Bearer {token}"}}):
        with app.test_request_context("/functions.json", **kwargs) as context:
            assert http_identity(gateway, context.request) is None, kwargs


def test_an_authenticator_that_raises_means_anonymous():
    app, gateway = _gateway()

    def broken(request, settings):
        raise RuntimeError("down")

    gateway.authenticator = broken
    with app.test_request_context("/functions.json", headers={"Authorization": "Bearer x"}) as context:
        assert http_identity(gateway, context.request) is None


def test_anonymous_http_callers_get_401_unless_the_public_endpoint_is_on():
    app, _ = _gateway()
    reply = app.test_client().get("/functions.json")
    assert reply.status_code == 401
    assert reply.get_json() == {"error": "Authentication required"}
    assert reply.headers["WWW-Authenticate"] == "Bearer"
    reply = app.test_client().get("/functions.json", headers={"Authorization": "Bearer forged"})
    assert reply.status_code == 401
