"""The service of the rate-limit and breaker tests (``genapi worker tests.services.flaky``).

Every call that runs leaves a mark in Redis (``GENAPI_REDIS_URL``): ``flaky:runs`` counts
all runs, ``flaky:runs:<function>`` and ``flaky:runs:<function>:<node>`` the runs of one
function, so a test can tell a call that was answered without dispatching from one that ran.
``toggle`` fails while ``flaky:mode`` is ``fail`` (or ``fail:<node>`` on that node only).
"""

from __future__ import annotations

import time

from tests.services.marks import marks, node
from workers import GenApi, GenApiError

api = GenApi("flaky")




def ran(name: str) -> None:
    pipe = marks().pipeline()
    pipe.incr("flaky:runs")
    pipe.incr(f"flaky:runs:{name}")
    pipe.incr(f"flaky:runs:{name}:{node()}")
    pipe.execute()


@api.function("ok")
def ok():
    ran("ok")
    return "ok"


@api.function("plain")
def plain():
    """No api limit of its own (only the global ones apply)."""
    ran("plain")
    return "plain"


@api.function("limited")
def limited():
    ran("limited")
    return "limited"


@api.function("tunable")
def tunable():
    ran("tunable")
    return "tunable"


@api.function("by_device")
def by_device():
    ran("by_device")
    return "by_device"


@api.function("by_ip")
def by_ip():
    ran("by_ip")
    return "by_ip"


@api.function("room", arg_types={"room": {"type": "string", "allow_nil": True}})
def room(room):
    ran("room")
    return room


@api.function("staff_only", check_permission={"role": ["staff"]})
def staff_only():
    ran("staff_only")
    return "staff"


@api.function("boom")
def boom():
    """An unexpected exception: a breaker failure."""
    ran("boom")
    raise RuntimeError("boom went the function")


@api.function("deliberate")
def deliberate():
    """A deliberate error: never a breaker failure."""
    ran("deliberate")
    raise GenApiError("deliberately refused")


@api.function("slow", timeout=300)
def slow():
    """Always outlives its timeout: a breaker failure."""
    ran("slow")
    time.sleep(1)
    return "too late"


@api.function("toggle")
def toggle():
    ran("toggle")
    mode = (marks().get("flaky:mode") or b"").decode()
    if mode == "fail" or mode == f"fail:{node()}":
        raise RuntimeError("toggle is in fail mode")
    return "ok"
