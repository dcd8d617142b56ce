"""The service the benchmark's one worker serves: ``genapi worker bench.bench_service``.

Two equivalent echo functions run on the same worker:

- ``bench.echo`` — a GenApi function, called through the gateway over a WebSocket (its
  reply is published on the gateway's reply channel; no result backend);
- ``bench_plain.echo`` — a plain Celery task (``shared_task``, results stored), the floor:
  the caller does ``apply_async(queue="genapi.bench").get()`` through the result backend.

``shared_task`` attaches the plain tasks to every Celery app when it is finalized, so the
app ``genapi worker`` builds serves them without any change to the workers SDK. They are
sent to the service queue ``genapi.bench``, which that worker consumes.

For the rows of the response modes and node selection (issue 6):

- ``bench.stream`` (``response_type="stream"``) yields ``n`` strings of ``size`` characters,
  each starting with its index (8 digits) so the client can check the order;
- ``bench.echo_async`` (``response_type="async"``): an ack frame, then the echo;
- ``bench.echo_<mode>``: the sync echo with each ``choose_node_mode`` (:data:`MODES`); every
  mode but ``any`` sends the task to the chosen worker's direct queue.

The ``stamp`` twins return the worker's wall clock, so the benchmark can split a round
trip into legs. The GenApi one also returns when the gateway dispatched the call: the
gateway puts ``deadline = time.time() + timeout`` into the task's ``genapi`` header just
before it sends the task.
"""

from __future__ import annotations

import time

from celery import current_task, shared_task

from workers import GenApi

SERVICE = "bench"
QUEUE = "genapi.bench"
PLAIN_ECHO = "bench_plain.echo"
PLAIN_STAMP = "bench_plain.stamp"

api = GenApi(SERVICE)


@api.function("echo", arg_types={"value": "any"})
def echo(value):
    return value


STREAM_TIMEOUT_MS = 120000


@api.function("stream", arg_types={"n": "num", "size": "num"}, response_type="stream", timeout=STREAM_TIMEOUT_MS)
def stream(n, size):
    pad = "x" * (int(size) - 8)
    for i in range(int(n)):
        yield f"{i:08d}{pad}"


@api.function("echo_async", arg_types={"value": "any"}, response_type="async")
def echo_async(value):
    return value


#: the row label of each selection mode -> (the function's request_type, its choose_node_mode)
MODES = {
    "any": ("echo_any", "any"),
    "random": ("echo_random", "random"),
    "round_robin": ("echo_round_robin", "round_robin"),
    "hash": ("echo_hash", "hash"),
    '{"hash": "value"}': ("echo_hash_value", {"hash": "value"}),
    '{"sticky": "value"}': ("echo_sticky_value", {"sticky": "value"}),
    "first": ("echo_first", "first"),
    "last": ("echo_last", "last"),
}


@api.function("echo_any", arg_types={"value": "any"}, choose_node_mode="any")
def echo_any(value):
    return value


@api.function("echo_random", arg_types={"value": "any"}, choose_node_mode="random")
def echo_random(value):
    return value


@api.function("echo_round_robin", arg_types={"value": "any"}, choose_node_mode="round_robin")
def echo_round_robin(value):
    return value


@api.function("echo_hash", arg_types={"value": "any"}, choose_node_mode="hash")
def echo_hash(value):
    return value


@api.function("echo_hash_value", arg_types={"value": "any"}, choose_node_mode={"hash": "value"})
def echo_hash_value(value):
    return value


@api.function("echo_sticky_value", arg_types={"value": "any"}, choose_node_mode={"sticky": "value"})
def echo_sticky_value(value):
    return value


@api.function("echo_first", arg_types={"value": "any"}, choose_node_mode="first")
def echo_first(value):
    return value


@api.function("echo_last", arg_types={"value": "any"}, choose_node_mode="last")
def echo_last(value):
    return value


STAMP_TIMEOUT_MS = 5000


@api.function("stamp", arg_types={"value": "any"}, timeout=STAMP_TIMEOUT_MS)
def stamp(value):
    now = time.time()
    meta = getattr(current_task.request, "genapi", None) or {}
    deadline = meta.get("deadline")
    dispatched = None if deadline is None else deadline - STAMP_TIMEOUT_MS / 1000
    return {"value": value, "t": now, "dispatched": dispatched}


@shared_task(name=PLAIN_ECHO, ignore_result=False)
def plain_echo(value):
    return value


@shared_task(name=PLAIN_STAMP, ignore_result=False)
def plain_stamp(value):
    return {"value": value, "t": time.time()}
