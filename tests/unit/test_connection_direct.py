"""Connection's direct write path, over a real socket pair and a real wsproto connection."""

from __future__ import annotations

import socket
from types import SimpleNamespace

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

from gateway_app.connection import Connection


def open_pair():
    """A server-side wsproto connection after its handshake, and the client's socket."""
    client, server = WSConnection(ConnectionType.CLIENT), WSConnection(ConnectionType.SERVER)
    server.receive_data(client.send(Request(host="test", target="/ws")))
    next(server.events())
    client.receive_data(server.send(AcceptConnection()))
    list(client.events())
    ours, theirs = socket.socketpair()
    ws = SimpleNamespace(ws=server, sock=ours, connected=True, close_reason=None, close_message=None,
                         close=lambda **kw: None)
    return ws, client, theirs


def test_an_idle_connection_writes_the_frame_itself_in_order():
    ws, client, theirs = open_pair()
    conn = Connection(ws, None, public=True)
    try:
        for i in range(3):
            assert conn.send({"n": i}) is True
        theirs.settimeout(5)
        texts = []
        while len(texts) < 3:
            client.receive_data(theirs.recv(65536))
            texts += [e.data for e in client.events() if isinstance(e, TextMessage)]
        assert texts == ['{"n":0}', '{"n":1}', '{"n":2}']
        assert conn.queued_bytes == 0
    finally:
        conn.finish()
        theirs.close()


def test_a_client_gone_under_a_direct_write_is_not_an_error():
    ws, client, theirs = open_pair()
    conn = Connection(ws, None, public=True)
    theirs.close()
    results = [conn.send({"big": "x" * 100_000}) for _ in range(50)]  # a reset shows after some writes
    assert results[-1] is False and conn.open is False
    conn.finish()
