"""A service whose calls set off every kind of telemetry event (tests/integration/test_telemetry_events.py)."""

from __future__ import annotations

from workers import GenApi, GenApiError

api = GenApi("observed")


def passes(request_info, args):
    return args


def refuses(request_info, args):
    raise GenApiError("closed today")


def breaks(request_info, result):
    raise RuntimeError("the after hook broke")


def wraps(request_info, result):
    return {"wrapped": result}


@api.function("ok")
def ok():
    return 1


@api.function("hooked", before_execute="tests.services.observed:passes", after_execute="tests.services.observed:breaks")
def hooked():
    return "hooked"


@api.function("wrapped", after_execute="tests.services.observed:wraps")
def wrapped():
    return "plain"


@api.function("refused", before_execute="tests.services.observed:refuses")
def refused():
    return "never"


@api.function("limited")
def limited():
    return "limited"


@api.function("boom", retry=1)
def boom():
    raise ValueError("boom")


@api.function("count", response_type="stream")
def count():
    yield from range(3)


@api.function("spare")
def spare():
    return "spare"
