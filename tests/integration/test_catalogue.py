"""The function catalogue over a real gateway and worker (``tests.services.catalogue_svc``).

* ``gateway/functions`` and ``GET /functions.json`` carry each function's JSON Schema and
  description;
* for a table of values, the gateway accepts a call (no ``Invalid arguments``) exactly when
  the schema from the catalogue accepts its ``args``;
* a type-hinted function answers every call as its explicit twin does (same error strings).
"""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator, ValidationError, validators

from .conftest import ADMIN_TOKEN, Stack, _databases, call, http_json, request

U = "f47ac10b-58cc-4372-a567-0e02b2c3d479"

VALUES = [
    None, True, False, 0, 1, 2.5, -3, 1.0, 1e300, 10**20,
    "", "a", "abcd", "abcde", "éé", "ééa", "€a", "€ab", "😀", "😀a", "low", "high", "Low", "é" * 1500, "é" * 1501,
    U, U.upper(), U.replace("-", ""), f"{{{U}}}", f"urn:uuid:{U}", f"URN:UUID:{U}", f"{U}\n", f" {U}",
    f"urn:uuid:{{{U}}}", U[:-1],
    "2024-05-01", "2024-02-29", "2023-02-29", "20240501", "2024-W18-3", "2024-5-1", "0000-01-01", "2024-05-01\n",
    "2024-05-01T12:00:00Z", "2024-05-01T12:00Z", "2024-05-01 12:00:00+02:00", "2024-05-01T12:00:00.123456-05:30",
    "2024-05-01T12:00:00z", "2024-05-01t12:00:00Z", "2024-05-01T12:00:00.1234567Z", "2024-05-01T12:00:00+0200",
    "2024-05-01T24:00Z", "2024-05-01T12:00:00", "2024-05-01 12:00", "2024-05-01T12:00:00.5", "2024-02-30T00:00",
    [], [1], [1, 2.5], [True], ["a"], ["ab", "abc"], ["abcd"], ["€"], ["€a"], ["a", "b", "c"], [1, 2, 3],
    [1, 2, 3, 4], [None], [[1]], [{}], [{"a": {"b": 1}}], [U], [U, f"urn:uuid:{U}"], ["nope"], ["a", 1, True], ["1"],
    {}, {"k": 1}, {"k": "x", "v": [1, "a"]}, {"k": {"a": 1}}, {"k": None}, {"a": 1, "b": 2}, {"a": 1, "b": 2, "c": 3},
    {"v": 1}, {"k": 1, "z": 2}, {"k": [[1]]}, {"k": "é" * 1501},
]
#: every value as ``x``, then the argument left out, then an undeclared one next to it
ARGSETS = [{"x": value} for value in VALUES] + [{}, {"x": "a", "y": 1}]

TWINS = ["string", "short", "level", "num", "choice", "boolean", "uuid", "date", "datetime", "any", "list", "strings",
         "nums", "uuids", "maps", "map", "flat", "nullable", "default"]
EXPLICIT_ONLY = ["naive_x", "checked_x"]
FUNCTIONS = [f"{kind}_{side}" for kind in TWINS for side in ("x", "h")] + EXPLICIT_ONLY


def _max_bytes(validator, limit, instance, schema):
    if validator.is_type(instance, "string") and len(instance.encode("utf-8")) > limit:
        yield ValidationError(f"{instance!r} is longer than {limit} bytes of UTF-8")


Validator = validators.extend(Draft202012Validator, {"x-max-bytes": _max_bytes})


@pytest.fixture(scope="module")
def catalogue_stack(redis_server, tmp_path_factory):
    stack = Stack(f"redis://127.0.0.1:{redis_server}/{next(_databases)}", tmp_path_factory.mktemp("catalogue"))
    try:
        stack.worker = stack.start_worker("tests.services.catalogue_svc")
        stack.gateway = stack.start_gateway(stack.worker)
        yield stack
    finally:
        stack.stop_all()


def _listing(gateway, **connect) -> list[dict]:
    with gateway.connect(**connect) as ws:
        frame = call(ws, request("functions", service="gateway", request_id="f"))
    assert frame["success"] is True, frame
    return frame["result"]


@pytest.fixture(scope="module")
def catalogue(catalogue_stack) -> dict[str, dict]:
    return {entry["request_type"]: entry for entry in _listing(catalogue_stack.gateway)}


def _answers(ws, request_type: str) -> list[dict]:
    """Send every argument set at once, then read the frames (in any order) until each has one."""
    for index, args in enumerate(ARGSETS):
        ws.send(json.dumps(request(request_type, args, request_id=str(index), service="catalogue")))
    frames: dict[int, dict] = {}
    while len(frames) < len(ARGSETS):
        frame = json.loads(ws.recv(timeout=30))
        frames[int(frame["request_id"])] = frame
    return [frames[index] for index in range(len(ARGSETS))]


@pytest.fixture(scope="module")
def answers(catalogue_stack) -> dict[str, list[dict]]:
    with catalogue_stack.gateway.connect() as ws:
        return {name: _answers(ws, name) for name in FUNCTIONS}


def _gateway_accepts(frame: dict) -> bool:
    if frame["success"]:
        return True
    assert frame["error"].startswith("Invalid arguments: "), frame  # nothing else may fail here
    return False


# --------------------------------------------------------------------------- listing


def test_every_function_is_listed_with_its_schema_and_description(catalogue):
    assert set(FUNCTIONS) <= set(catalogue)
    string = catalogue["string_x"]
    assert string["args_schema"] == {
        "type": "object", "properties": {"x": {"type": "string", "maxLength": 3000, "x-max-bytes": 3000}},
        "required": ["x"], "additionalProperties": False}
    assert string["description"] == catalogue["string_h"]["description"] == "Echo a string."
    assert catalogue["short_x"]["description"] is None
    assert catalogue["default_h"]["args_schema"]["properties"]["x"] == {"type": "number", "default": 7}
    assert catalogue["default_h"]["args_schema"]["required"] == []
    assert catalogue["level_h"]["arg_types"]["x"]["enum"] == ["low", "high"]
    for entry in catalogue.values():
        Validator.check_schema(entry["args_schema"])
        assert entry["available"] is True


@pytest.mark.parametrize("kind", TWINS)
def test_twins_publish_the_same_schema(catalogue, kind):
    explicit, hinted = catalogue[f"{kind}_x"], catalogue[f"{kind}_h"]
    assert hinted["args_schema"] == explicit["args_schema"]
    assert hinted["arg_types"] == explicit["arg_types"]
    assert hinted["arg_orders"] == explicit["arg_orders"] == ["x"]


# --------------------------------------------------- the gateway and the schema agree


@pytest.mark.parametrize("name", FUNCTIONS)
def test_gateway_accepts_exactly_what_the_schema_accepts(catalogue, answers, name):
    validator = Validator(catalogue[name]["args_schema"])
    accepted = 0
    for args, frame in zip(ARGSETS, answers[name], strict=True):
        by_gateway = _gateway_accepts(frame)
        assert by_gateway == validator.is_valid(args), (args, frame)
        accepted += by_gateway
    assert 0 < accepted < len(ARGSETS)  # the table tells accepted and refused calls apart for every type


@pytest.mark.parametrize("kind", TWINS)
def test_hinted_twin_answers_like_its_explicit_twin(answers, kind):
    for args, explicit, hinted in zip(ARGSETS, answers[f"{kind}_x"], answers[f"{kind}_h"], strict=True):
        assert (hinted["success"], hinted["error"]) == (explicit["success"], explicit["error"]), args
        if explicit["success"]:
            assert hinted["result"]["value"] == explicit["result"]["value"] or kind in ("uuid", "uuids"), args


def test_hinted_functions_receive_python_objects(answers):
    index = ARGSETS.index({"x": f"URN:UUID:{U}"})
    assert answers["uuid_h"][index]["result"] == {"type": "UUID", "items": None, "value": U}
    assert answers["uuid_x"][index]["result"] == {"type": "str", "items": None, "value": f"URN:UUID:{U}"}
    index = ARGSETS.index({"x": [U, f"urn:uuid:{U}"]})
    assert answers["uuids_h"][index]["result"]["items"] == ["UUID"]
    assert answers["uuids_x"][index]["result"]["items"] == ["str"]
    index = ARGSETS.index({"x": "2024-02-29"})
    assert answers["date_h"][index]["result"] == answers["date_x"][index]["result"] == {
        "type": "date", "items": None, "value": "2024-02-29"}
    index = ARGSETS.index({"x": "2024-05-01T12:00Z"})
    assert answers["datetime_h"][index]["result"]["type"] == answers["datetime_x"][index]["result"]["type"] == \
        "datetime"
    missing = ARGSETS.index({})
    assert answers["default_h"][missing]["result"]["value"] == answers["default_x"][missing]["result"]["value"] == 7


# ---------------------------------------------------------------- GET /functions.json


def test_functions_json_with_a_token_or_a_bearer_header(catalogue_stack):
    gateway = catalogue_stack.gateway
    over_ws = _listing(gateway)
    token = gateway.url(user="alice").split("?token=", 1)[1]
    status, body = http_json(f"http://127.0.0.1:{gateway.port}/functions.json?token={token}")
    assert status == 200 and body == over_ws
    status, body = http_json(f"http://127.0.0.1:{gateway.port}/functions.json", token=token)
    assert status == 200 and body == over_ws


@pytest.mark.parametrize("token", [None, "forged", ADMIN_TOKEN])
def test_functions_json_refuses_anonymous_callers(catalogue_stack, token):
    status, body = http_json(f"http://127.0.0.1:{catalogue_stack.gateway.port}/functions.json", token=token)
    assert (status, body) == (401, {"error": "Authentication required"})


def test_functions_json_is_open_where_the_public_endpoint_is(catalogue_stack):
    public = catalogue_stack.start_gateway(catalogue_stack.worker, GENAPI_PUBLIC_WS="1")
    try:
        status, body = http_json(f"http://127.0.0.1:{public.port}/functions.json")
        assert status == 200
        assert {entry["request_type"] for entry in body} == set(FUNCTIONS)
        assert body == _listing(public, path="/ws/public", user=None)
    finally:
        catalogue_stack.stop(public.process)
