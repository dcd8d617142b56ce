"""Every `Invalid request: …` case answers with an error frame and keeps the connection."""

from __future__ import annotations

import json

import pytest

from .conftest import call, request

PING = request("ping", service="gateway", request_id="still-alive")


@pytest.mark.parametrize("raw, error", [
    ("not json", "Invalid request: Malformed request payload: not valid JSON"),
    ("[1, 2]", "Invalid request: Malformed request payload: expected a JSON object, got an array"),
    ('"text"', "Invalid request: Malformed request payload: expected a JSON object, got a string"),
    ("42", "Invalid request: Malformed request payload: expected a JSON object, got a number"),
    ("null", "Invalid request: Malformed request payload: expected a JSON object, got null"),
    ('{"service": "sample", "request_type": "add", "request_id": NaN}',
     "Invalid request: Malformed request payload: not valid JSON"),
])
def test_undecodable_frames(ws, raw, error):
    frame = call(ws, raw)
    assert frame["request_id"] == "unknown"
    assert frame["error"].startswith(error)
    assert frame["success"] is False and frame["can_retry"] is False
    assert call(ws, PING)["result"] == "pong"


@pytest.mark.parametrize("payload, missing", [
    ({}, "request_type, request_id, service"),
    ({"service": "sample"}, "request_type, request_id"),
    ({"service": "sample", "request_type": "add"}, "request_id"),
    ({"service": "", "request_type": "add", "request_id": "x"}, "service"),
    ({"service": "sample", "request_type": None, "request_id": ""}, "request_type, request_id"),
])
def test_missing_fields_in_fixed_order(ws, payload, missing):
    frame = call(ws, payload)
    assert frame["error"] == f"Invalid request: Missing required fields: {missing}"
    assert call(ws, PING)["result"] == "pong"


@pytest.mark.parametrize("change, detail", [
    ({"service": 5}, "service must be a string"),
    ({"request_type": ["add"]}, "request_type must be a string"),
    ({"args": [1, 2]}, "args must be an object"),
    ({"version": 1}, "version must be a string"),
    ({"device_id": {}}, "device_id must be a string"),
])
def test_fields_of_the_wrong_type(ws, change, detail):
    frame = call(ws, {**request("add", {"a": 1, "b": 2}, request_id="t1"), **change})
    assert frame["request_id"] == "t1"
    assert frame["error"] == f"Invalid request: Malformed request payload: {detail}"


def test_args_null_means_no_arguments(ws):
    assert call(ws, {**request("ver"), "args": None})["result"] == "2.0.0"


def test_oversized_frame_gets_an_error_and_the_connection_survives(ws):
    raw = json.dumps(request("echo", {"text": "x" * 1_000_100}, request_id="big"))
    frame = call(ws, raw)
    assert frame["request_id"] == "unknown"
    assert frame["error"] == (
        f"Invalid request: Request payload exceeds maximum size of 1000000 bytes (got {len(raw)} bytes)")
    assert call(ws, PING)["result"] == "pong"


def test_size_is_measured_in_bytes_not_characters(ws):
    raw = json.dumps(request("echo", {"text": "é" * 600_000}), ensure_ascii=False)
    assert len(raw) < 1_000_000 < len(raw.encode())
    frame = call(ws, raw)
    assert f"(got {len(raw.encode())} bytes)" in frame["error"]


def test_frame_just_under_the_limit_is_decoded(ws):
    frame = call(ws, json.dumps(request("echo", {"text": "x" * 990_000}, request_id="fits")))
    assert frame["request_id"] == "fits"
    assert frame["error"].startswith("Invalid arguments: ")  # reached validation: 3000-byte default


def test_binary_frames_are_read_as_utf8(ws):
    ws.send(json.dumps(request("add", {"a": 1, "b": 2}, request_id="bin")).encode())
    assert json.loads(ws.recv(timeout=10))["result"] == 3
