"""/healthz and /readyz of an in-process gateway on a real Redis (Flask's test client)."""

from __future__ import annotations

import pytest
from flask import Flask

from gateway_app import Gateway
from workers.settings import Settings

TOKEN = "health-test-admin-token"


@pytest.fixture
def gateway(redis_db):
    kwargs = redis_db.connection_pool.connection_kwargs
    url = f"redis://127.0.0.1:{kwargs['port']}/{kwargs['db']}"
    app = Flask("health-test")
    app.config["GENAPI_SETTINGS"] = Settings(redis_url=url, broker_url=url, admin_token=TOKEN)
    gateway = Gateway(app)
    try:
        yield gateway, app.test_client()
    finally:
        gateway.stop()


def test_liveness_says_nothing_but_ok(gateway):
    _, client = gateway
    reply = client.get("/healthz")
    assert (reply.status_code, reply.get_json()) == (200, {"status": "ok"})


def test_readiness_details_need_the_admin_token(gateway):
    _, client = gateway
    reply = client.get("/readyz")
    assert (reply.status_code, reply.get_json()) == (200, {"status": "ok"})
    assert client.get("/readyz", headers={"Authorization": "Bearer wrong"}).get_json() == {"status": "ok"}
    details = client.get("/readyz", headers={"Authorization": f"Bearer {TOKEN}"}).get_json()
    assert details["checks"] == {"redis": "ok", "broker": "ok", "reply_subscription": "ok", "accepting_calls": "ok"}
    assert {"gateway_id", "nodes", "tasks", "pending", "connections", "detail_error"} <= set(details)


def test_a_draining_gateway_is_not_ready(gateway):
    extension, client = gateway
    assert client.get("/readyz").status_code == 200
    extension.draining = True
    reply = client.get("/readyz", headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status_code == 503 and reply.get_json()["status"] == "unavailable"
    assert reply.get_json()["checks"]["accepting_calls"] == "draining"


def test_admin_routes_answer_401_without_the_bearer_token(gateway):
    _, client = gateway
    reply = client.get("/admin/functions")
    assert reply.status_code == 401 and reply.headers["WWW-Authenticate"] == "Bearer"
    assert client.get("/admin/functions", headers={"Authorization": f"Bearer {TOKEN}"}).get_json() == []
    assert client.get("/admin/functions", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
