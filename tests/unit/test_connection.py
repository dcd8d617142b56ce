"""gateway_app.connection: the per-connection outbound queue, its byte bound and its writer thread.

The WebSocket is a fake that records what the writer did and can be made to block in ``send``
(a client that stopped reading); every test releases it, so no writer is left blocked.
"""

from __future__ import annotations

import json
import socket
import threading

import msgpack
import pytest
from simple_websocket import ConnectionClosed

from gateway_app import connection
from gateway_app.connection import TERMINAL_RESERVE, Connection
from gateway_app.processes import wait_until
from workers.protocol import encode, error_frame, response

WAIT = 10  # seconds: generous upper bound for thread hand-offs, never a synchronisation sleep


class FakeSocket:
    """The raw socket under the WebSocket: ``shutdown`` breaks a send blocked on it."""

    def __init__(self, ws: FakeWs) -> None:
        self.ws = ws
        self.shutdowns: list[int] = []
        self.shut = threading.Event()

    def shutdown(self, how: int) -> None:
        self.shutdowns.append(how)
        self.ws.failure = OSError("socket is shut down")
        self.shut.set()
        self.ws.release()


class FakeWs:
    """Records ``("send", frame)`` and ``("close", code, message)`` in the order the writer did them.

    ``stall()`` makes the next ``send`` block until ``release()``; ``blocked`` is set once a
    send is waiting. ``failure``, when set, is what ``send`` raises (a broken socket).
    """

    def __init__(self, with_socket: bool = False) -> None:
        self.events: list[tuple] = []
        self.failure: Exception | None = None
        self.blocked = threading.Event()
        self._gate = threading.Event()
        self._gate.set()
        self._changed = threading.Condition()
        if with_socket:
            self.sock = FakeSocket(self)

    def stall(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def send(self, text: str) -> None:
        if not self._gate.is_set():
            self.blocked.set()
            self._gate.wait()
        if self.failure is not None:
            raise self.failure
        self._record(("send", json.loads(text)))

    def close(self, reason=None, message=None) -> None:
        self._record(("close", reason, message))

    def _record(self, event: tuple) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def wait_for(self, count: int) -> list[tuple]:
        """The events once there are ``count`` of them (fails after WAIT seconds)."""
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.events) >= count, WAIT), self.events
            return list(self.events)

    def sent(self) -> list[dict]:
        return [event[1] for event in self.events if event[0] == "send"]


@pytest.fixture
def connect():
    """Opens connections on fake sockets; at the end releases every socket and checks that
    every writer thread has ended."""
    opened: list[tuple[FakeWs, Connection]] = []

    def open_connection(ws: FakeWs, queue_bytes: int = connection.QUEUE_BYTES) -> Connection:
        conn = Connection(ws, None, False, queue_bytes)
        opened.append((ws, conn))
        return conn

    yield open_connection
    for ws, conn in opened:
        ws.release()
        conn.finish()
        conn._writer.join(WAIT)
        assert not conn._writer.is_alive()


def chunk(i: int) -> dict:
    return response("r", result=f"chunk-{i:04d}", success=True, is_async=True, has_more=True)


END = response("r", success=True, is_async=True)
CHUNK_SIZE = len(encode(chunk(0)))


def too_big_for_the_reserve(conn: Connection) -> dict:
    return response("r", result="x" * (conn.queue_bytes + TERMINAL_RESERVE), success=True)


def stalled_after_first_frame(ws: FakeWs, conn: Connection) -> None:
    """Make the writer take ``chunk(0)`` and block on it, as with a client that stopped reading."""
    ws.stall()
    assert conn.send(chunk(0), terminal=False) is True
    assert ws.blocked.wait(WAIT)


def test_frames_are_written_in_the_order_they_were_sent(connect):
    ws = FakeWs()
    conn = connect(ws)
    frames = [chunk(i) for i in range(200)] + [END]
    for frame in frames[:-1]:
        assert conn.send(frame, terminal=False) is True
    assert conn.send(END) is True
    ws.wait_for(len(frames))
    assert ws.sent() == frames


def test_frames_from_many_threads_are_each_written_once_in_each_threads_order(connect):
    ws = FakeWs()
    conn = connect(ws)
    start = threading.Barrier(4)

    def producer(n: int) -> None:
        start.wait()
        for i in range(100):
            conn.send(response(n, result=i, success=True), terminal=False)

    threads = [threading.Thread(target=producer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    ws.wait_for(400)
    for n in range(4):
        assert [f["result"] for f in ws.sent() if f["request_id"] == n] == list(range(100))


def test_a_chunk_beyond_the_bound_is_refused_while_a_terminal_frame_uses_the_reserve(connect):
    ws = FakeWs()
    conn = connect(ws, queue_bytes=3 * CHUNK_SIZE)
    stalled_after_first_frame(ws, conn)
    assert [conn.send(chunk(i), terminal=False) for i in (1, 2, 3)] == [True, True, True]
    assert conn.queued_bytes == 3 * CHUNK_SIZE
    assert conn.send(chunk(4), terminal=False) is False
    assert conn.send(END) is True  # the reserve: a stream can still be ended
    assert conn.open
    ws.release()
    ws.wait_for(5)
    assert ws.sent() == [chunk(0), chunk(1), chunk(2), chunk(3), END]


def test_a_frame_larger_than_the_bound_is_taken_when_nothing_is_queued(connect):
    ws = FakeWs()
    conn = connect(ws, queue_bytes=10)
    big = response("r", result="x" * 1000, success=True, is_async=True, has_more=True)
    assert conn.send(big, terminal=False) is True
    ws.wait_for(1)
    assert ws.sent() == [big]


def test_a_terminal_frame_that_does_not_fit_the_reserve_closes_the_connection_as_too_slow(connect):
    ws = FakeWs()
    conn = connect(ws, queue_bytes=3 * CHUNK_SIZE)
    stalled_after_first_frame(ws, conn)
    assert conn.send(chunk(1), terminal=False) is True
    assert conn.send(too_big_for_the_reserve(conn)) is False
    assert conn.open is False
    assert conn.send(END) is False
    assert conn.send(chunk(2), terminal=False) is False
    ws.release()
    # what was queued is dropped: only the frame already in the socket, then the close
    assert ws.wait_for(2) == [("send", chunk(0)), ("close", 1008, "client too slow")]
    assert conn.queued_bytes == 0


def test_an_aborted_connection_whose_writer_stays_blocked_has_its_socket_shut_down(connect, monkeypatch):
    monkeypatch.setattr(connection, "CLOSE_GRACE", 0.01)
    ws = FakeWs(with_socket=True)
    conn = connect(ws, queue_bytes=CHUNK_SIZE)
    stalled_after_first_frame(ws, conn)
    assert conn.send(chunk(1), terminal=False) is True
    assert conn.send(too_big_for_the_reserve(conn)) is False
    assert ws.sock.shut.wait(WAIT)  # nobody released the client: the grace timer did
    assert ws.sock.shutdowns == [socket.SHUT_RDWR]
    conn._writer.join(WAIT)
    assert not conn._writer.is_alive()
    assert ws.sent() == []  # the blocked send failed; no close handshake on a dead socket


def test_close_writes_everything_already_queued_then_the_close(connect):
    ws = FakeWs()
    conn = connect(ws)
    stalled_after_first_frame(ws, conn)
    assert conn.send(chunk(1), terminal=False) and conn.send(END)
    conn.close(1001, "going away")
    assert conn.open is False
    assert conn.send(chunk(2), terminal=False) is False
    assert conn.send(END) is False
    ws.release()
    assert ws.wait_for(4) == [("send", chunk(0)), ("send", chunk(1)), ("send", END), ("close", 1001, "going away")]


def test_a_second_close_is_ignored(connect):
    ws = FakeWs()
    conn = connect(ws)
    conn.close(1001, "going away")
    conn.close(1000, "again")
    conn._writer.join(WAIT)
    assert ws.events == [("close", 1001, "going away")]


@pytest.mark.parametrize("result", [object(), float("nan"), {"tags": {1, 2}}, b"bytes"],
                         ids=["object", "nan", "set", "bytes"])
def test_an_unserialisable_result_becomes_an_internal_server_error_frame(connect, result):
    ws = FakeWs()
    conn = connect(ws)
    assert conn.send(response("r7", result=result, success=True)) is True
    ws.wait_for(1)
    assert ws.sent() == [error_frame("r7", "Internal Server Error")]


def test_queued_bytes_count_waiting_frames_and_go_back_to_zero_once_written(connect):
    ws = FakeWs()
    conn = connect(ws)
    assert conn.queued_bytes == 0
    stalled_after_first_frame(ws, conn)
    for i in range(1, 6):
        conn.send(chunk(i), terminal=False)
    assert conn.queued_bytes == 5 * CHUNK_SIZE
    ws.release()
    ws.wait_for(6)
    assert conn.queued_bytes == 0


@pytest.mark.parametrize("error", [OSError("reset"), ConnectionClosed()], ids=["os_error", "connection_closed"])
def test_a_failed_socket_write_closes_the_connection_and_later_sends_fail(connect, error):
    ws = FakeWs()
    ws.failure = error
    conn = connect(ws)
    assert conn.send(chunk(0), terminal=False) is True
    wait_until(lambda: not conn.open, WAIT, "the writer noticed the broken socket", interval=0.005)
    assert conn.send(END) is False
    assert conn.queued_bytes == 0


def test_finish_writes_what_is_queued_and_lets_the_writer_go(connect):
    ws = FakeWs()
    conn = connect(ws)
    stalled_after_first_frame(ws, conn)
    conn.send(END)
    conn.finish()
    assert conn.send(chunk(1), terminal=False) is False
    ws.release()
    conn._writer.join(WAIT)
    assert not conn._writer.is_alive()
    assert ws.events == [("send", chunk(0)), ("send", END), ("close", 1000, "")]


class BinaryWs(FakeWs):
    """A socket whose client asked for MessagePack frames."""

    subprotocol = "genapi.msgpack"

    def send(self, data: bytes) -> None:
        assert isinstance(data, bytes), data
        self._record(("send", msgpack.unpackb(data)))


def test_a_msgpack_connection_sends_binary_frames_also_for_relay_text(connect):
    ws = BinaryWs()
    conn = connect(ws)
    assert conn.binary
    conn.send(response("r", result={"é": [1, 2.5, None]}, success=True))
    conn.send_text(encode(response("g", result={"message": "hi"}, success=True)), terminal=False)
    ws.wait_for(2)
    assert ws.sent() == [response("r", result={"é": [1, 2.5, None]}, success=True),
                         response("g", result={"message": "hi"}, success=True)]


def test_a_json_connection_is_not_binary(connect):
    assert not connect(FakeWs()).binary
