#!/usr/bin/env python
"""What each stage of a gateway sync call costs, timed in-process (no gevent, no client).

    python bench/bench_stages.py [--iterations N]

Complements ``bench_sync.py``: that one measures whole round trips; this one times the
gateway's own work per call, one stage at a time, against a fresh ``redis-server``:

- the pipeline from the raw frame up to (not including) the Celery send, with the real
  ``Gateway`` and its registry cache, and a dispatcher that only records;
- ``CeleryDispatcher.send`` (the gateway's ``send_task``), and variants of it that show
  what its options cost, next to a bare ``LPUSH`` of a ready message;
- the reply: ``Replies.on_message`` on a connection whose socket only counts bytes (the frame
  goes through the connection's outbound queue and writer thread);
- WebSocket framing with wsproto, as simple-websocket does it, with and without
  permessage-deflate, and a loopback TCP ``send`` of one frame.

Each line shows wall and CPU microseconds per operation (medians of 5 batches).
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from flask import Flask  # noqa: E402
from wsproto import ConnectionType, WSConnection  # noqa: E402
from wsproto.events import AcceptConnection, Request, TextMessage  # noqa: E402
from wsproto.extensions import PerMessageDeflate  # noqa: E402

from bench import bench_service  # noqa: E402
from gateway_app import pipeline, processes  # noqa: E402
from gateway_app.auth import Identity  # noqa: E402
from gateway_app.connection import Connection  # noqa: E402
from gateway_app.deliveries import Pending  # noqa: E402
from gateway_app.dispatch import CeleryDispatcher  # noqa: E402
from gateway_app.extension import Gateway  # noqa: E402
from workers import pushconfig  # noqa: E402
from workers.celery_app import create_celery_app  # noqa: E402
from workers.protocol import Keys, reply_result, response  # noqa: E402
from workers.registry import Registry  # noqa: E402
from workers.settings import Settings  # noqa: E402

QUEUE = "bench.stages"  # nobody consumes it; emptied after each stage


def timeit(label: str, op: Callable[[int], None], iterations: int, batches: int = 5) -> tuple[float, float]:
    for i in range(min(200, iterations)):
        op(i)
    walls, cpus = [], []
    per_batch = max(1, iterations // batches)
    for _ in range(batches):
        w0, c0 = time.perf_counter(), time.thread_time()
        for i in range(per_batch):
            op(i)
        walls.append((time.perf_counter() - w0) / per_batch * 1e6)
        cpus.append((time.thread_time() - c0) / per_batch * 1e6)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    print(f"  {label:66} {wall:8.1f} {cpu:8.1f}", flush=True)
    return wall, cpu


class Recorder:
    """A dispatcher that keeps the last call (the pipeline's work without the broker)."""

    last: tuple | None = None

    def send(self, task_name, args, queue, timeout_s, meta, *, sensitive=()) -> None:
        self.last = (task_name, args, queue, timeout_s, meta)


class CountingWs:
    """Stands in for the simple-websocket object: ``send`` only counts."""

    sent = 0
    last = None

    def send(self, text) -> None:
        self.sent += len(text)
        self.last = text


class SignallingWs(CountingWs):
    """Counts, and sets ``written`` on each send (the caller waits on it without spinning)."""

    def __init__(self) -> None:
        self.written = threading.Event()

    def send(self, text) -> None:
        super().send(text)
        self.written.set()


def ws_pair(deflate: bool) -> tuple[WSConnection, WSConnection]:
    """A client and a server wsproto connection after the handshake (in memory)."""
    client, server = WSConnection(ConnectionType.CLIENT), WSConnection(ConnectionType.SERVER)
    extensions = [PerMessageDeflate()] if deflate else []
    server.receive_data(client.send(Request(host="bench", target="/ws", extensions=extensions)))
    for _ in server.events():
        client.receive_data(server.send(AcceptConnection(extensions=[PerMessageDeflate()])))
    list(client.events())
    return client, server


def run(iterations: int) -> None:
    workdir = tempfile.mkdtemp(prefix="genapi-stages-")
    port = processes.free_port()
    with open(Path(workdir) / "redis.log", "ab") as log:
        server = processes.start_redis(port, workdir, log=log)
    try:
        client = redis.Redis(port=port)
        processes.wait_until(lambda: client.ping(), 10, "redis-server", server)
        url = f"redis://127.0.0.1:{port}/0"
        settings = Settings(redis_url=url, broker_url=url, secret_key="bench")
        config = bench_service.echo.genapi_config
        registry = Registry(client, Keys(settings.key_prefix))
        registry.push(pushconfig.build("bench", "bench@stages", [config], "stages", None))  # applied by start()
        registry.join("bench@stages", [config], 600)

        recorder = Recorder()
        gateway = Gateway(Flask("bench"), settings=settings, dispatcher=recorder)
        gateway.start()  # registry cache, reply listener (idle here), sweeper
        conn = Connection(CountingWs(), Identity("bench", ("bench",)), public=False)
        raw = json.dumps({"service": "bench", "request_type": "echo", "request_id": "17", "args": {"value": 17}})

        print(f"{'stage (per call)':68} {'wall us':>8} {'CPU us':>8}")
        print("gateway, request side")

        def through_pipeline(_: int) -> None:
            pipeline.run(gateway, conn, raw)
            if recorder.last is None:
                raise RuntimeError(f"the pipeline answered instead of dispatching: {conn.ws.last}")
            gateway.deliveries.take(recorder.last[4]["ref"])
            gateway.replies.in_flight.remove(conn)  # as settle would: the in-flight cap never fills

        timeit("pipeline.run: JSON decode .. select_node, Deliveries.add", through_pipeline, iterations)
        task_name, args, queue, timeout_s, meta = recorder.last
        gateway.deliveries.expire(float("inf"))

        app = create_celery_app(settings, name="bench-stages")
        dispatcher = CeleryDispatcher(app)
        options = {"queue": QUEUE, "ignore_result": True, "headers": {"genapi": meta}}

        def stage(label: str, op: Callable[[int], None]) -> None:
            timeit(label, op, iterations)
            client.delete(QUEUE)

        stage("CeleryDispatcher.send (send_task: expires, headers, ignore_result)",
              lambda i: dispatcher.send(task_name, args, QUEUE, timeout_s, meta))
        stage("  same without expires", lambda i: app.send_task(task_name, kwargs=args, **options))
        stage("  same with argsrepr/kwargsrepr given (no saferepr)",
              lambda i: app.send_task(task_name, kwargs=args, expires=timeout_s, argsrepr="", kwargsrepr="",
                                      **options))
        with app.producer_or_acquire() as producer:
            stage("  same with one held producer (producer=)",
                  lambda i: app.send_task(task_name, kwargs=args, expires=timeout_s, producer=producer, **options))
        app.send_task(task_name, kwargs=args, expires=timeout_s, **options)
        message = client.rpop(QUEUE)
        stage("  floor: redis-py LPUSH of the same message (one round trip)", lambda i: client.lpush(QUEUE, message))
        plain = app.tasks[bench_service.PLAIN_ECHO]
        stage("Celery client for comparison: apply_async() incl. result SUBSCRIBE",
              lambda i: plain.apply_async(kwargs={"value": i}, queue=QUEUE).forget())

        print("gateway, reply side")
        reply = json.dumps(reply_result("r", 17)).encode()
        pending = Pending(conn, "17", "sync", None, ref="r", config=gateway.cache.snapshot.functions[
            ("bench", "echo")][config.version], started=time.monotonic())

        def on_reply(_: int) -> None:
            gateway.deliveries._pending["r"] = pending  # what Deliveries.add did for this call
            gateway.replies.on_message(reply)

        timeit("Replies.on_message: JSON decode, take, settle, Response frame, JSON encode, queued for the "
               "connection's writer", on_reply, iterations)
        frame = response("17", result=17, success=True)
        timeit("  of which Connection.send: JSON encode, queued, writer woken", lambda i: conn.send(frame), iterations)
        probe = Connection(SignallingWs(), Identity("bench", ("bench",)), public=False)

        def handed_over(_: int) -> None:  # until the writer thread has passed the frame to the socket
            probe.ws.written.clear()
            probe.send(frame)
            probe.ws.written.wait(5)

        timeit("  Connection.send until the writer thread has written it (OS threads here, not greenlets)",
               handed_over, min(iterations, 5000))

        print("WebSocket framing (wsproto, as simple-websocket; client frames are masked)")
        frame = json.dumps({"request_id": "17", "result": 17, "success": True, "error": None, "async": False,
                            "has_more": False, "can_retry": False})
        for deflate in (False, True):
            ws_client, ws_server = ws_pair(deflate)
            name = "permessage-deflate" if deflate else "no compression"
            timeit(f"server sends one Response frame, {name}",
                   lambda i, s=ws_server: s.send(TextMessage(frame)), iterations)
            data = ws_client.send(TextMessage(raw))

            def receive(_: int, s=ws_server, d=data) -> None:
                s.receive_data(d)
                for _event in s.events():
                    pass

            timeit(f"server receives one request frame, {name}", receive, iterations)

        listener = socket.create_server(("127.0.0.1", 0))
        sender = socket.create_connection(listener.getsockname())
        receiver, _ = listener.accept()
        sender.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stop = threading.Event()

        def drain() -> None:
            receiver.settimeout(0.2)
            while not stop.is_set():
                try:
                    receiver.recv(1 << 16)
                except TimeoutError:
                    pass

        drainer = threading.Thread(target=drain, daemon=True)
        drainer.start()
        payload = ws_server.send(TextMessage(frame))
        timeit("loopback TCP send of one frame (the syscall)", lambda i: sender.send(payload), iterations)
        stop.set()
        drainer.join()
        for sock in (sender, receiver, listener):
            sock.close()
        app.close()
        gateway.stop()
        client.close()
    finally:
        processes.stop(server)
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=5000)
    args = parser.parse_args(argv)
    run(args.iterations)
    return 0


if __name__ == "__main__":
    sys.exit(main())
