"""The service the integration tests call (``genapi worker tests.services.sample``)."""

from __future__ import annotations

import os
import time

import redis

from workers import GenApi, GenApiError

api = GenApi("sample")

ALL_TYPES = {
    "s": "string", "n": "num", "b": "boolean", "u": "uuid", "l": "list", "ls": "list_string",
    "ln": "list_num", "lu": "list_uuid", "lm": "list_map", "m": "map", "a": "any",
    "dt": "datetime", "ndt": "naive_datetime",
    "short": {"type": "string", "max_bytes": 4},
    "sm": {"type": "map", "required": ["k"], "accept": ["k", "v"]},
}


@api.function("add", arg_types={"a": "num", "b": "num"})
def add(a, b):
    return a + b


@api.function("echo", arg_types={"text": "string", "times": {"type": "num", "default_value": 2},
                                 "note": {"type": "string", "allow_nil": True}}, arg_orders="map")
def echo(args):
    return args


@api.function("typed", arg_types={name: ({"type": spec, "allow_nil": True} if isinstance(spec, str)
                                         else {**spec, "allow_nil": True}) for name, spec in ALL_TYPES.items()},
              arg_orders="map")
def typed(args):
    """Returns the Python type of each argument it received."""
    return {name: type(value).__name__ for name, value in args.items() if value is not None}


@api.function("slow", arg_types={"ms": "num"}, timeout=300)
def slow(ms):
    time.sleep(ms / 1000)
    return "done"


@api.function("nap", arg_types={"ms": "num"}, timeout=20000)
def nap(ms):
    time.sleep(ms / 1000)
    return f"slept {ms} ms"


@api.function("boom")
def boom():
    raise ValueError("boom went the function")


@api.function("refuse")
def refuse():
    raise GenApiError("not today")


@api.function("unserialisable")
def unserialisable():
    return {"when": object()}


@api.function("whoami", request_info=True)
def whoami(request_info):
    return request_info


@api.function("ver", version="1.0.0")
def ver_1():
    return "1.0.0"


@api.function("ver", version="2.0.0")
def ver_2():
    return "2.0.0"


@api.function("ver", version="3.0.0", disabled=True)
def ver_3():
    return "3.0.0"


@api.function("admins_only", check_permission={"role": ["admin"]})
def admins_only():
    return "secret"


@api.function("members_only", check_permission="any_authenticated")
def members_only():
    return "members"


@api.function("async_add", arg_types={"a": "num", "b": "num"}, response_type="async")
def async_add(a, b):
    return a + b


@api.function("record", arg_types={"key": "string"}, response_type="none")
def record(key):
    """Fire-and-forget: leaves a mark in Redis for the test to find."""
    redis.Redis.from_url(os.environ["GENAPI_REDIS_URL"]).set(key, "done", ex=60)


@api.function("mine", arg_types={"filter": "map"}, arg_orders="map", check_permission={"arg": "user_id"})
def mine(args):
    """Registers although `user_id` is a key inside the `filter` map (reference §5.2)."""
    return args
