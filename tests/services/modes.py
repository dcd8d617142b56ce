"""The service of the response-mode, selection and retry tests (``genapi worker tests.services.modes``).

Functions leave marks in Redis (``GENAPI_REDIS_URL``) so tests can see side effects: how
many attempts ran, on which node, whether a generator's ``finally`` ran.
"""

from __future__ import annotations

import os
import signal
import threading
import time

from tests.services.marks import marks, node
from workers import GenApi, GenApiError

api = GenApi("modes")




# ------------------------------------------------------------------ async and none


@api.function("async_double", arg_types={"n": "num"}, response_type="async")
def async_double(n):
    return n * 2


@api.function("async_fail", response_type="async")
def async_fail():
    raise GenApiError("async went wrong")


@api.function("async_sleep", arg_types={"ms": "num"}, response_type="async", timeout=400)
def async_sleep(ms):
    time.sleep(ms / 1000)
    return "woke"


@api.function("async_wait", arg_types={"mark": "string", "ms": "num"}, response_type="async", timeout=20000)
def async_wait(mark, ms):
    marks().incr(f"{mark}:started")
    time.sleep(ms / 1000)
    marks().incr(f"{mark}:finished")
    return "waited"


@api.function("none_mark", arg_types={"mark": "string"}, response_type="none")
def none_mark(mark):
    marks().set(mark, node(), ex=60)


@api.function("none_fail", arg_types={"mark": "string"}, response_type="none", retry=2)
def none_fail(mark):
    marks().incr(mark)
    marks().expire(mark, 60)
    raise GenApiError("none fails")


# ------------------------------------------------------------------------ streams


@api.function("count", arg_types={"n": "num"}, response_type="stream", timeout=30000)
def count(n):
    yield from range(int(n))


@api.function("count_last", arg_types={"n": "num"}, response_type="stream")
def count_last(n):
    yield from range(int(n))
    return "last"


@api.function("count_fail", arg_types={"n": "num"}, response_type="stream")
def count_fail(n):
    yield from range(int(n))
    raise GenApiError("stream broke")


@api.function("blobs", arg_types={"n": "num", "size": "num"}, response_type="stream", timeout=120000)
def blobs(n, size):
    blob = "x" * int(size)
    for _ in range(int(n)):
        yield blob


@api.function("ticker", arg_types={"mark": "string", "ms": "num"}, response_type="stream", timeout=60000)
def ticker(mark, ms):
    """Counts ticks in Redis until it is closed; marks ``closed`` in its ``finally``."""
    try:
        i = 0
        while True:
            marks().set(f"{mark}:ticks", i, ex=120)
            yield i
            i += 1
            time.sleep(ms / 1000)
    finally:
        marks().set(f"{mark}:closed", "yes", ex=120)


@api.function("endless", arg_types={"mark": "string"}, response_type="stream", timeout=600)
def endless(mark):
    """Outlives its 600 ms timeout."""
    try:
        while True:
            yield "tick"
            time.sleep(0.05)
    finally:
        marks().set(f"{mark}:closed", "yes", ex=120)


@api.function("pushed", arg_types={"n": "num"}, response_type="stream", request_info=True)
def pushed(n, request_info):
    """A producer that is not a generator: a thread drives the stream handle."""
    stream = request_info["stream"]

    def produce():
        for i in range(int(n)):
            stream.send_result({"i": i})
        stream.send_last_result({"done": int(n)})

    threading.Thread(target=produce, daemon=True).start()


@api.function("pushed_error", response_type="stream", request_info=True)
def pushed_error(request_info):
    stream = request_info["stream"]
    stream.send_result("one")
    stream.error("producer failed")


# ---------------------------------------------------------------------- selection


@api.function("where_random", choose_node_mode="random")
def where_random():
    return node()


@api.function("where_round_robin", choose_node_mode="round_robin")
def where_round_robin():
    return node()


@api.function("where_hash", choose_node_mode="hash")
def where_hash():
    return node()


@api.function("where_first", choose_node_mode="first")
def where_first():
    return node()


@api.function("where_last", choose_node_mode="last")
def where_last():
    return node()


@api.function("where_any")
def where_any():
    return node()


@api.function("where_key", arg_types={"k": "string"}, choose_node_mode={"hash": "k"})
def where_key(k):
    return node()


@api.function("where_sticky", arg_types={"k": "string"}, choose_node_mode={"sticky": "k"})
def where_sticky(k):
    return node()


def pick_last_by_name(nodes, request):
    """A custom selector: the live worker whose name sorts last."""
    return max(node.node_id for node in nodes)


@api.function("where_custom", choose_node_mode="tests.services.modes:pick_last_by_name")
def where_custom():
    return node()


# -------------------------------------------------------------------------- retry


def _attempt(mark: str) -> int:
    attempt = marks().incr(f"{mark}:attempts")
    marks().rpush(f"{mark}:nodes", node())
    marks().expire(f"{mark}:attempts", 120)
    marks().expire(f"{mark}:nodes", 120)
    return attempt


@api.function("fail_times", arg_types={"mark": "string", "failures": "num"}, retry={"all_nodes": 3},
              timeout=20000)
def fail_times(mark, failures):
    attempt = _attempt(mark)
    if attempt <= failures:
        raise GenApiError(f"attempt {attempt} fails")
    return attempt


@api.function("always_fail", arg_types={"mark": "string"}, retry=3, timeout=20000)
def always_fail(mark):
    _attempt(mark)
    raise ValueError("always")


@api.function("same_node_fail", arg_types={"mark": "string"}, retry={"same_node": 2}, timeout=20000,
              choose_node_mode="random")
def same_node_fail(mark):
    _attempt(mark)
    raise GenApiError("again")


@api.function("no_retry_fail", arg_types={"mark": "string"}, timeout=20000)
def no_retry_fail(mark):
    _attempt(mark)
    raise GenApiError("once")


def _die_first(mark: str) -> str:
    """The first attempt kills its own worker process (as SIGKILL would); later ones answer."""
    if _attempt(mark) == 1:
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)
    return node()


@api.function("die_then_retry", arg_types={"mark": "string"}, retry={"all_nodes": 1}, timeout=20000)
def die_then_retry(mark):
    return _die_first(mark)


@api.function("die_sync", arg_types={"mark": "string"}, timeout=3000)
def die_sync(mark):
    return _die_first(mark)


@api.function("die_async", arg_types={"mark": "string"}, response_type="async", timeout=3000)
def die_async(mark):
    return _die_first(mark)


@api.function("die_stream", arg_types={"mark": "string"}, response_type="stream", timeout=20000)
def die_stream(mark):
    yield "before"
    yield _die_first(mark)


@api.function("slow_count", arg_types={"n": "num", "ms": "num"}, response_type="stream", timeout=30000)
def slow_count(n, ms):
    for i in range(int(n)):
        yield i
        time.sleep(ms / 1000)


@api.function("stream_retry", arg_types={"mark": "string", "chunks_first": "boolean"}, response_type="stream",
              retry={"all_nodes": 2}, timeout=20000)
def stream_retry(mark, chunks_first):
    """Fails on its first attempt: after one chunk, or before any."""
    attempt = _attempt(mark)
    if chunks_first:
        yield f"attempt {attempt}"
    if attempt == 1:
        raise GenApiError("first attempt fails")
    yield f"done on attempt {attempt}"
