"""WebSocket transport options."""

from __future__ import annotations

from .conftest import call, request


def test_compression_is_declined_by_default(ws):
    # the websockets client offers permessage-deflate; the gateway does not take it
    assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
    assert call(ws, request("add", {"a": 1, "b": 2}))["result"] == 3


def test_compression_can_be_switched_on(stack, sample_worker):
    gateway = stack.start_gateway(sample_worker, GENAPI_WS_COMPRESSION="1")
    with gateway.connect() as ws:
        assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert call(ws, request("echo", {"text": "z" * 2000}))["result"]["text"] == "z" * 2000
