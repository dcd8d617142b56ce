"""A client that stops reading holds up nobody else on its gateway process."""

from __future__ import annotations

import json
import socket
import statistics
import time

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

from gateway_app.auth import mint_token
from gateway_app.processes import wait_until

from .conftest import SECRET, call, request

QUEUE_BYTES = 1024 * 1024


class StalledClient:
    """A WebSocket client over a raw socket that sends requests and never reads a byte."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fill up fast
        self.sock.connect(("127.0.0.1", port))
        self.ws = WSConnection(ConnectionType.CLIENT)
        token = mint_token(SECRET, "stalled")
        self.sock.sendall(self.ws.send(Request(host=f"127.0.0.1:{port}", target=f"/ws?token={token}")))
        while True:
            self.ws.receive_data(self.sock.recv(65536))
            if any(isinstance(event, AcceptConnection) for event in self.ws.events()):
                break

    def send(self, payload: dict) -> None:
        self.sock.sendall(self.ws.send(TextMessage(data=json.dumps(payload))))

    def close(self) -> None:
        self.sock.close()


def latencies(ws, count: int) -> list[float]:
    times = []
    for i in range(count):
        started = time.monotonic()
        frame = call(ws, request("where_any", request_id=i, service="modes"), timeout=10)
        assert frame["success"] is True, frame
        times.append(time.monotonic() - started)
    return times


def test_a_stalled_reader_does_not_slow_another_client(fresh_stack):
    workers = [fresh_stack.start_worker("tests.services.modes") for _ in range(2)]
    gateway = fresh_stack.start_gateway(*workers, GENAPI_OUTBOUND_QUEUE_BYTES=str(QUEUE_BYTES))
    with gateway.connect() as active:
        before = latencies(active, 20)
        stalled = StalledClient(gateway.port)
        try:
            # 10 streams of 30 × 100 KB: far more than its socket and its queue can hold
            for i in range(10):
                stalled.send(request("blobs", {"n": 30, "size": 100_000}, request_id=f"b{i}", service="modes"))
            wait_until(lambda: gateway.status()["queued_bytes"] >= QUEUE_BYTES * 0.9, 20,
                       "the stalled client's queue fills")
            during = latencies(active, 20)
            # its streams ended (with an error frame it will never read), their workers stopped
            wait_until(lambda: gateway.status()["pending"] == 0, 20, "the stalled client's streams end")
            status = gateway.status()
        finally:
            stalled.close()
    # its queue stays bounded: at most the limit, the terminal reserve and one frame more
    assert status["queued_bytes"] <= QUEUE_BYTES + 256 * 1024 + 110_000, status
    # every call of the active client is answered promptly (it froze for 20 s before)
    assert max(during) < 1.0, (before, during)
    assert statistics.median(during) < 0.2, (before, during)


def test_a_slow_but_reading_client_gets_every_chunk_intact(fresh_stack):
    """The socket's send buffer fills while the client lags: frames must still go out whole
    (simple-websocket's own send() dropped the rest of a partial write: a 1002 close)."""
    worker = fresh_stack.start_worker("tests.services.modes")
    gateway = fresh_stack.start_gateway(worker)
    client = StalledClient(gateway.port)
    try:
        client.send(request("blobs", {"n": 120, "size": 50_000}, request_id="slow", service="modes"))
        frames, partial = [], ""
        while not frames or frames[-1]["has_more"]:
            data = client.sock.recv(16384)  # small reads, slower than the gateway writes
            assert data, "the gateway closed the connection"
            client.ws.receive_data(data)
            for event in client.ws.events():
                assert isinstance(event, TextMessage), event  # no close, no protocol error
                partial += event.data
                if event.message_finished:
                    frames.append(json.loads(partial))
                    partial = ""
            time.sleep(0.0005)
    finally:
        client.close()
    assert frames[0]["result"] == "init" and frames[-1]["result"] is None and frames[-1]["success"] is True
    assert len(frames) == 122 and all(f["result"] == "x" * 50_000 for f in frames[1:-1])
