"""A small demo service: ``genapi worker workers.examples.demo``.

Try it with ``{"service": "demo", "request_type": "hello", "request_id": "1",
"args": {"name": "Ada"}}``, or on the try-it page ``genapi dev`` serves at ``/``.
"""

from __future__ import annotations

import time

from workers import GenApi, GenApiError

api = GenApi("demo")


@api.function("hello", arg_types={"name": {"type": "string", "max_bytes": 100, "default_value": "world"}})
def hello(name):
    """Greets someone."""
    return {"greeting": f"Hello, {name}!"}


@api.function("add", arg_types={"a": "num", "b": "num"}, version="1.0.0")
def add(a, b):
    """Adds two numbers (positional arguments, in the order of the parameters)."""
    return a + b


@api.function("echo", arg_types={"text": "string", "times": {"type": "num", "default_value": 1}},
              arg_orders="map")
def echo(args):
    """Returns the text repeated: the function gets one object holding every argument."""
    if args["times"] < 0:
        raise GenApiError("times must not be negative")
    return {"text": args["text"] * int(args["times"])}


@api.function("whoami", request_info=True)
def whoami(request_info):
    """Shows the identity the gateway attached to the call."""
    return request_info


@api.function("count", response_type="stream", timeout=60000)
def count(to: int = 5, pause_ms: float = 200):
    """Counts from 1 to ``to``, one stream chunk per number (arguments from the type hints)."""
    for number in range(1, int(to) + 1):
        time.sleep(pause_ms / 1000)
        yield number
