"""Argument validation in the gateway: one bad value per type, each named in the error."""

from __future__ import annotations

import pytest

from .conftest import call, request

GOOD = {
    "s": "text", "n": 1.5, "b": False, "u": "urn:uuid:0190a6d2-7c4e-7b3a-9c1d-2e3f4a5b6c7d",
    "l": [1, "two", True], "ls": ["a", "b"], "ln": [1, 2.5], "lu": ["6ba7b810-9dad-11d1-80b4-00c04fd430c8"],
    "lm": [{"x": {"deep": [1]}}], "m": {"nested": {"ok": True}}, "a": [None, {"x": 1}],
    "dt": "2024-05-01T12:00:00Z", "ndt": "2024-05-01T12:00:00", "short": "abcd", "sm": {"k": 1, "v": [1, 2]},
}

BAD = [
    ("s", 5, '"s" must be a string, got number 5'),
    ("n", "30", '"n" must be a number, got string "30"'),
    ("n", True, '"n" must be a number, got boolean true'),
    ("b", "true", '"b" must be true or false'),
    ("u", "not-a-uuid", '"u" must be a UUID string'),
    ("l", [[1]], '"l[0]" must be a string, number or boolean'),
    ("ls", ["a", 1], '"ls[1]" must be a string'),
    ("ln", [1, "2"], '"ln[1]" must be a number'),
    ("lu", ["nope"], '"lu[0]" must be a UUID string'),
    ("lm", [1], '"lm[0]" must be an object'),
    ("m", [1], '"m" must be an object'),
    ("dt", "2024-05-01T12:00:00", '"dt" must be an ISO 8601 datetime with a UTC offset'),
    ("ndt", "2024-05-01T12:00:00+02:00", '"ndt" must be an ISO 8601 datetime without offset'),
    ("short", "abcde", '"short" is too long: max 4 bytes, got 5 bytes'),
    ("sm", {"v": 1}, '"sm" is missing required keys: k'),
    ("sm", {"k": 1, "x": 2}, '"sm" has keys that are not accepted: x'),
    ("sm", {"k": {"deep": 1}}, '"sm.k" must be a string, number, boolean or flat list'),
]


def test_every_type_accepts_a_good_value_and_the_worker_gets_python_objects(ws):
    frame = call(ws, request("typed", GOOD))
    assert frame["success"] is True, frame
    result = frame["result"]
    assert result["dt"] == "datetime" and result["ndt"] == "datetime"
    assert result["n"] == "float" and result["l"] == "list" and result["m"] == "dict"


@pytest.mark.parametrize("name, value, message", BAD, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(BAD)])
def test_bad_value_is_refused_before_dispatch(ws, name, value, message):
    frame = call(ws, request("typed", {name: value}, request_id=name))
    assert frame["request_id"] == name
    assert frame["success"] is False and frame["can_retry"] is False
    assert frame["error"].startswith(f"Invalid arguments: {message}"), frame["error"]


def test_missing_argument(ws):
    assert call(ws, request("add", {"a": 1}))["error"] == 'Invalid arguments: missing argument "b"'


def test_null_for_a_required_argument(ws):
    assert call(ws, request("add", {"a": 1, "b": None}))["error"] == 'Invalid arguments: "b" must not be null'


def test_extra_arguments_are_rejected_by_name(ws):
    frame = call(ws, request("add", {"a": 1, "b": 2, "c": 3}))
    assert frame["error"] == 'Invalid arguments: unknown argument "c" (expected: "a", "b")'


def test_arguments_to_a_function_that_takes_none_are_ignored(ws):
    frame = call(ws, request("ver", {"x": 1, "y": "anything"}))
    assert frame["success"] is True and frame["result"] == "2.0.0", frame
