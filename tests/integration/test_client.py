"""The Python client (``gateway_app.client``) against a real gateway, worker and Redis: sync,
async and stream calls with the blocking and the asyncio client, early stops that stop the
producer, many calls in flight on one socket, typed errors, catalogue proxies, relay groups
between two clients, reconnecting after the gateway died, and MessagePack frames."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
import uuid

import pytest

from gateway_app.auth import mint_token
from gateway_app.client import (
    AsyncClient,
    Client,
    ConnectFailed,
    ConnectionLost,
    InternalServerError,
    InvalidArguments,
    PermissionDenied,
    RelayError,
    TimedOut,
    UnsupportedFunction,
)
from gateway_app.processes import free_port, wait_until

from .conftest import SECRET, GatewayProcess, Stack, _databases

MODULES = ("tests.services.modes", "tests.services.sample")


@pytest.fixture(scope="module")
def client_stack(redis_server, tmp_path_factory):
    """One worker serving ``modes`` and ``sample``, and a gateway, on a database of their own."""
    stack = Stack(f"redis://127.0.0.1:{redis_server}/{next(_databases)}", tmp_path_factory.mktemp("client"))
    try:
        worker = stack.start_worker(*MODULES)
        stack.gateway = stack.start_gateway(worker)
        stack.worker = worker
        yield stack
    finally:
        stack.stop_all()


def token(user: str = "alice", roles=("admin",)) -> str:
    return mint_token(SECRET, user, list(roles), None, 600)


def ws_url(gateway: GatewayProcess) -> str:
    return f"ws://127.0.0.1:{gateway.port}/ws"


@pytest.fixture
def client(client_stack):
    with Client(ws_url(client_stack.gateway), token=token()) as c:
        yield c


def mark() -> str:
    return f"m-{uuid.uuid4().hex[:10]}"


def producer_stopped(stack: Stack, name: str) -> bool:
    """The ticker's ``finally`` ran and its counter stays still for half a second."""
    wait_until(lambda: stack.redis.get(f"{name}:closed") == b"yes", 10, "the generator's finally ran")
    before, started = stack.redis.get(f"{name}:ticks"), time.monotonic()
    while time.monotonic() - started < 0.5:
        if stack.redis.get(f"{name}:ticks") != before:
            return False
    return True


# ------------------------------------------------------------------ blocking client


def test_sync_async_and_stream_calls(client):
    assert client.ping() == "pong"
    assert client.call("sample", "add", {"a": 2, "b": 3}) == 5
    assert client.call("modes", "async_double", {"n": 21}) == 42
    assert client.call_async("modes", "async_double", {"n": 4}).result(timeout=10) == 8
    assert list(client.stream("modes", "count", {"n": 3})) == [0, 1, 2]
    assert list(client.stream("modes", "count_last", {"n": 2})) == [0, 1, "last"]
    assert list(client.stream("modes", "pushed", {"n": 2})) == [{"i": 0}, {"i": 1}, {"done": 2}]
    # documented choices: call() collects a stream; stream() of a sync function yields its result
    assert client.call("modes", "count", {"n": 3}) == [0, 1, 2]
    assert list(client.stream("sample", "add", {"a": 1, "b": 1})) == [2]


def test_a_stream_error_comes_after_its_chunks(client):
    seen = []
    with pytest.raises(InternalServerError) as caught:
        for chunk in client.stream("modes", "count_fail", {"n": 2}):
            seen.append(chunk)
    assert seen == [0, 1]
    assert caught.value.error.startswith("Internal Server Error") and caught.value.can_retry is False


def test_breaking_out_of_a_stream_stops_the_producer(client, client_stack):
    name = mark()
    for chunk in client.stream("modes", "ticker", {"mark": name, "ms": 50}):
        if chunk == 2:
            break  # the iterator is dropped here: the client sends gateway/cancel
    assert producer_stopped(client_stack, name)
    assert client.call("sample", "add", {"a": 1, "b": 2}) == 3  # the socket is still fine
    wait_until(lambda: client_stack.gateway.status()["pending"] == 0, 5, "the gateway forgot the stream")


def test_closing_a_stream_stops_the_producer(client, client_stack):
    name = mark()
    with client.stream("modes", "ticker", {"mark": name, "ms": 50}) as feed:
        assert next(feed) == 0
        assert next(feed) == 1
    assert producer_stopped(client_stack, name)
    assert list(feed) == []  # closed: nothing more


def test_many_calls_in_flight_on_one_socket(client):
    futures = [client.call_async("modes", "async_double", {"n": n}) for n in range(40)]
    results = {}

    def streamer(k: int) -> None:
        results[k] = list(client.stream("modes", "count", {"n": k}))

    threads = [threading.Thread(target=streamer, args=(k,)) for k in range(1, 6)]
    for thread in threads:
        thread.start()
    sums = [client.call("sample", "add", {"a": n, "b": 1}) for n in range(10)]
    for thread in threads:
        thread.join(30)
    assert [f.result(timeout=30) for f in futures] == [2 * n for n in range(40)]
    assert results == {k: list(range(k)) for k in range(1, 6)}
    assert sums == [n + 1 for n in range(10)]


def test_typed_errors(client, client_stack):
    with pytest.raises(UnsupportedFunction) as caught:
        client.call("sample", "nope")
    assert caught.value.error == "unsupported function: nope version latest"
    assert caught.value.can_retry is False and isinstance(caught.value.request_id, str)
    with pytest.raises(InvalidArguments) as caught:
        client.call("sample", "add", {"a": "2", "b": 1})
    assert caught.value.error.startswith('Invalid arguments: "a" must be a number')
    with Client(ws_url(client_stack.gateway), token=token("bob", roles=())) as bob:
        with pytest.raises(PermissionDenied):
            bob.call("sample", "admins_only")
    with pytest.raises(TimedOut) as caught:
        client.call("modes", "async_sleep", {"ms": 1000})  # its 400 ms timeout passes at the gateway
    assert caught.value.can_retry is True
    with pytest.raises(TimedOut) as caught:  # the client's own bound
        client.call("sample", "nap", {"ms": 1500}, timeout=0.3)
    assert "0.3 s" in caught.value.error


def test_proxies(client):
    assert client.services.sample.add(a=2, b=3) == 5
    assert client.services.modes.async_double(n=5) == 10
    assert list(client.services.modes.count(n=3)) == [0, 1, 2]
    assert client.services.sample.echo(text="ab") == {"text": "ab", "times": 2, "note": None}
    assert "add" in dir(client.services.sample)
    with pytest.raises(AttributeError, match="add") as caught:
        client.services.sample.ad  # noqa: B018 - attribute access is the call under test
    assert "functions:" in str(caught.value)
    with pytest.raises(AttributeError, match="services: .*modes"):
        client.services.nosuch  # noqa: B018


def test_proxies_check_arguments_before_sending(client):
    with pytest.raises(InvalidArguments) as caught:
        client.services.sample.add(a="x", b=1)
    assert caught.value.request_id is None  # nothing was sent
    assert caught.value.error == 'Invalid arguments: "a" must be a number, got string "x"'
    with pytest.raises(InvalidArguments, match='missing argument "b"'):
        client.services.sample.add(a=1)
    with pytest.raises(InvalidArguments, match='unknown argument "c"'):
        client.services.sample.add(a=1, b=2, c=3)


def test_relay_between_two_clients(client_stack):
    group = f"g-{uuid.uuid4().hex[:10]}"
    url = ws_url(client_stack.gateway)
    with Client(url, token=token("ann")) as ann, Client(url, token=token("ben")) as ben:
        assert ann.create_group(group)["status"] == "created"
        assert ben.join(group) == {"group_id": group, "status": "active"}
        assert ben.send(group, {"text": "hi"}) == {"status": "relayed", "recipients_count": 2}
        got = ann.next_relay_message(timeout=10)
        assert (got.group_id, got.from_user_id, got.message) == (group, "ben", {"text": "hi"})
        own = ben.next_relay_message(timeout=10)  # the sender gets its own copy after the answer
        assert own.message == {"text": "hi"} and own.request_id == got.request_id
        with pytest.raises(RelayError, match="Group not found"):
            ann.send(f"{group}-missing", "x")
        created = f"{group}-auto"
        assert ben.join(created, create="public")["status"] in ("created", "active")


def test_asyncio_client(client_stack):
    name = mark()

    async def scenario() -> None:
        async with AsyncClient(ws_url(client_stack.gateway), token=token()) as aclient:
            assert await aclient.call("sample", "add", {"a": 2, "b": 3}) == 5
            pending = [aclient.call_async("modes", "async_double", {"n": n}) for n in range(20)]
            assert await asyncio.gather(*pending) == [2 * n for n in range(20)]
            assert [c async for c in aclient.stream("modes", "count", {"n": 3})] == [0, 1, 2]
            feed = aclient.stream("modes", "ticker", {"mark": name, "ms": 50})
            async for chunk in feed:
                if chunk == 2:
                    break
            await feed.aclose()
            with pytest.raises(UnsupportedFunction):
                await aclient.call("sample", "nope")
            assert await aclient.services.sample.add(a=1, b=1) == 2
            chunks = await aclient.services.modes.count(n=2)
            assert [c async for c in chunks] == [0, 1]
            with pytest.raises(InvalidArguments):
                await aclient.services.sample.add(a=None, b=1)
            with pytest.raises(AttributeError):
                aclient.services.sample.nope  # noqa: B018 - the catalogue is cached now

    asyncio.run(scenario())
    assert producer_stopped(client_stack, name)


def test_msgpack_and_json_clients_get_the_same_answers(client_stack):
    url = ws_url(client_stack.gateway)
    with Client(url, token=token(), encoding="msgpack") as packed, Client(url, token=token()) as plain:
        for request in (("sample", "add", {"a": 2, "b": 3.5}), ("modes", "async_double", {"n": 2}),
                        ("sample", "echo", {"text": "héllo"}), ("modes", "count", {"n": 3})):
            assert packed.call(*request) == plain.call(*request)
        assert list(packed.stream("modes", "count_last", {"n": 2})) == [0, 1, "last"]
        for bad in (("sample", "nope"), ("sample", "add", {"a": "x", "b": 1})):
            with pytest.raises(Exception) as from_packed:
                packed.call(*bad)
            with pytest.raises(Exception) as from_plain:
                plain.call(*bad)
            assert type(from_packed.value) is type(from_plain.value)
            assert from_packed.value.error == from_plain.value.error


def test_connecting_to_nothing_fails_clearly():
    with pytest.raises(ConnectFailed, match="cannot connect to ws://127.0.0.1:"):
        Client(f"ws://127.0.0.1:{free_port()}/ws", timeout=5).connect()


# ------------------------------------------------------------------ reconnect


def start_gateway_on(stack: Stack, port: int) -> GatewayProcess:
    argv = [sys.executable, "-m", "gateway_app", "gateway", "--host", "127.0.0.1", "--port", str(port)]
    process = stack._spawn("gateway", argv, stack.env())
    gateway = GatewayProcess(process, port)
    wait_until(gateway.healthy, 30, "gateway", process)
    return gateway


def kill(gateway: GatewayProcess) -> None:
    """SIGKILL the gateway and its gunicorn workers: its sockets drop without a close frame."""
    os.killpg(gateway.process.pid, signal.SIGKILL)
    gateway.process.wait(10)


def test_reconnects_after_the_gateway_dies(fresh_stack):
    worker = fresh_stack.start_worker("tests.services.modes")
    port = free_port()
    gateway = start_gateway_on(fresh_stack, port)
    node = fresh_stack.node_of(worker)
    wait_until(lambda: fresh_stack.sees_worker(gateway, node), 10, "gateway sees the worker")
    with Client(f"ws://127.0.0.1:{port}/ws", token=token(), timeout=30, max_backoff=0.5) as client:
        assert client.call("modes", "async_double", {"n": 1}) == 2
        # long enough to be in flight when the gateway dies; short, so it is over before the teardown
        in_flight = client.call_async("modes", "async_wait", {"mark": mark(), "ms": 3000})
        wait_until(lambda: gateway.status()["pending"] == 1, 10, "the call reached the gateway")
        kill(gateway)
        with pytest.raises(ConnectionLost) as caught:
            in_flight.result(timeout=10)
        assert caught.value.can_retry is True
        wait_until(lambda: not client.connected, 5, "the client saw the drop")
        waiting = client.call_async("gateway", "ping")  # made while nothing listens on the port
        restarted = start_gateway_on(fresh_stack, port)
        assert waiting.result(timeout=30) == "pong"  # it waited for the reconnect
        assert client.connected
        wait_until(lambda: fresh_stack.sees_worker(restarted, node), 10, "new gateway sees the worker")
        assert client.call("modes", "async_double", {"n": 5}) == 10


def test_asyncio_relay_between_two_clients(client_stack):
    group = f"g-{uuid.uuid4().hex[:10]}"
    url = ws_url(client_stack.gateway)

    async def scenario() -> None:
        async with AsyncClient(url, token=token("cy")) as cy, AsyncClient(url, token=token("di")) as di:
            assert (await cy.create_group(group))["status"] == "created"
            assert await di.join(group) == {"group_id": group, "status": "active"}
            assert await di.send(group, ["hello", 1]) == {"status": "relayed", "recipients_count": 2}
            async for got in cy.relay_messages(timeout=10):
                assert (got.group_id, got.from_user_id, got.message) == (group, "di", ["hello", 1])
                break
            assert (await di.leave(group))["group_id"] == group
            with pytest.raises(RelayError, match="Group not found"):
                await cy.send(f"{group}-missing", "x")

    asyncio.run(scenario())
