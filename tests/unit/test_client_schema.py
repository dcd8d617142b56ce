"""gateway_app.client.schema: the client's own JSON Schema check of call arguments.

Two halves: the keywords one by one (what JSON Schema says they mean), and a cross-check
against the gateway: for every argument type and option, a pool of values of every JSON
kind goes through the gateway's ``validate_args`` and through the client's ``check_args`` on
the catalogue's ``args_schema``; both must accept or refuse alike, and with the same message
wherever the client knows the gateway's wording.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from gateway_app.client.schema import SchemaError, check, check_args, ecma_regex
from workers.argtypes import ArgumentError, parse_spec, validate_args
from workers.schema import args_schema


def refused(schema, value) -> str | None:
    """The message ``check`` raises for ``value``, or None when it accepts it."""
    try:
        check(schema, value, "x")
    except SchemaError as exc:
        return str(exc)
    return None


# ------------------------------------------------------------------ keywords


@pytest.mark.parametrize(("schema", "good", "bad"), [
    ({"type": "string"}, ["", "a"], [None, 1, True, [], {}]),
    ({"type": "number"}, [0, -1.5, 10**20], [True, False, "1", None]),
    ({"type": "integer"}, [0, 3, 2.0], [2.5, True, "2"]),
    ({"type": "boolean"}, [True, False], [0, 1, "true", None]),
    ({"type": "array"}, [[], [1], (1, 2)], [{}, "ab"]),
    ({"type": "object"}, [{}, {"a": 1}], [[], "x", None]),
    ({"type": "null"}, [None], [0, "", False]),
    ({"type": ["string", "null"]}, ["a", None], [1]),
    ({}, [None, 1, "a", [], {}], []),
    (True, [None, 1], []),
    (False, [], [None, 1, "a"]),
])
def test_type(schema, good, bad):
    assert all(refused(schema, value) is None for value in good)
    assert all(refused(schema, value) is not None for value in bad)


def test_enum_uses_json_equality():
    schema = {"enum": [1, "a", None]}
    assert refused(schema, 1.0) is None and refused(schema, None) is None
    assert refused(schema, True) == 'x must be one of 1, "a", got boolean true'.replace("x", '"x"', 1)
    assert refused({"enum": [True]}, 1) is not None
    assert refused({"enum": [[1, {"a": False}]]}, [1, {"a": False}]) is None
    assert refused({"enum": [[1, {"a": False}]]}, [1, {"a": 0}]) is not None


def test_string_lengths_count_bytes_and_code_points():
    assert refused({"x-max-bytes": 4}, "éé") is None
    assert refused({"x-max-bytes": 4}, "ééa") == '"x" is too long: max 4 bytes, got 5 bytes'
    assert refused({"x-max-bytes": 4}, "😀") is None
    assert refused({"maxLength": 2}, "😀😀") is None  # code points, not UTF-16 units
    assert refused({"maxLength": 2}, "abc") == '"x" is too long: max 2 characters, got 3 characters'
    assert refused({"maxLength": 1, "x-max-bytes": 1}, 5) is None  # string keywords ignore other types


def test_patterns_follow_ecmascript():
    assert refused({"pattern": "b"}, "abc") is None  # searched, not anchored
    assert refused({"pattern": "^abc$"}, "abc\n") is not None  # Python's $ would match before the newline
    assert refused({"pattern": "^a[$]$"}, "a$") is None  # a $ in a class is a character
    assert refused({"pattern": r"^\$$"}, "$") is None
    assert refused({"pattern": r"^\d+$"}, "١٢") is not None  # \d is ASCII in ECMAScript
    assert refused({"pattern": "^(?<year>[0-9]{4})$"}, "2024") is None
    assert refused({"pattern": "^(?<=a)b"}, "b") is not None  # a look-behind stays one
    assert ecma_regex("^a$(?!\\n)").pattern == "^a\\Z(?!\\n)"
    assert refused({"type": "string", "format": "uuid", "pattern": "^u$"}, "v") == \
        '"x" must be a UUID string, got string "v"'
    assert refused({"format": "email"}, "not an email") is None  # format is an annotation


def test_arrays():
    schema = {"type": "array", "maxItems": 2, "items": {"type": "number"}}
    assert refused(schema, [1, 2]) is None
    assert refused(schema, [1, 2, 3]) == '"x" has too many items: max 2, got 3'
    assert refused(schema, [1, "2"]) == '"x[1]" must be a number, got string "2"'


def test_objects():
    schema = {"type": "object", "maxProperties": 3, "required": ["a", "b"],
              "propertyNames": {"enum": ["a", "b", "c"]}, "properties": {"a": {"type": "string"}},
              "additionalProperties": {"type": "number"}}
    assert refused(schema, {"a": "x", "b": 1}) is None
    assert refused(schema, {"a": "x", "b": 1, "c": 2, "d": 3}) == '"x" has too many keys: max 3, got 4'
    assert refused(schema, {"c": 1}) == '"x" is missing required keys: a, b'
    assert refused(schema, {"a": "x", "b": 1, "z": 1}) == '"x" has keys that are not accepted: z'
    assert refused(schema, {"a": 1, "b": 1}) == '"x.a" must be a string, got number 1'
    assert refused(schema, {"a": "x", "b": "1"}) == '"x.b" must be a number, got string "1"'
    closed = {"type": "object", "properties": {"a": {}}, "additionalProperties": False}
    assert refused(closed, {"a": 1}) is None
    assert refused(closed, {"a": 1, "q": 2}) == '"x" has keys that are not accepted: q'


def test_any_of_and_not():
    nullable = {"anyOf": [{"type": "string", "x-max-bytes": 2}, {"type": "null"}]}
    assert refused(nullable, None) is None and refused(nullable, "ab") is None
    assert refused(nullable, "abc") == '"x" is too long: max 2 bytes, got 3 bytes'
    assert refused({"not": {"type": "null"}}, None) == '"x" must not be null'
    assert refused({"not": {"type": "null"}}, 0) is None
    assert refused({"not": {"type": "string"}}, "s") == '"x" must not be a string'


def test_arguments_in_the_gateways_order():
    schema = {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": ["string", "null"]},
                                               "c": {"type": "number", "default": 1}},
              "required": ["a"], "additionalProperties": False}
    check_args(schema, {"a": 1})
    check_args(schema, {"a": 1, "b": None})
    for args, message in [
        ({"a": 1, "y": 2, "x": 3}, 'unknown arguments "x", "y" (expected: "a", "b", "c")'),
        ({"b": "s"}, 'missing argument "a"'),
        ({"a": None}, '"a" must not be null'),
        ({"a": 1, "c": None}, '"c" must not be null'),
        ({"a": "1", "b": 2}, '"a" must be a number, got string "1"'),
    ]:
        with pytest.raises(SchemaError) as caught:
            check_args(schema, args)
        assert str(caught.value) == message
    check_args({"type": "object"}, {"anything": [1, {"goes": None}]})  # no declared arguments: all ignored
    check_args(None, {"x": 1})  # an old gateway's catalogue has no schema: nothing to check


# ------------------------------------------------------------------ the gateway agrees

U = str(uuid.UUID(int=0x1234567890ABCDEF1234567890ABCDEF))
SPECS = {
    "string": "string",
    "short": {"type": "string", "max_bytes": 4},
    "choice": {"type": "string", "enum": ["red", "green"]},
    "num": "num",
    "level": {"type": "num", "enum": [1, 2.5]},
    "boolean": "boolean",
    "uuid": "uuid",
    "datetime": "datetime",
    "naive_datetime": "naive_datetime",
    "date": "date",
    "any": "any",
    "list": {"type": "list", "max_items": 2, "max_item_bytes": 3},
    "list_string": {"type": "list_string", "max_items": 2, "max_item_bytes": 3},
    "list_num": "list_num",
    "list_uuid": "list_uuid",
    "list_map": "list_map",
    "map": {"type": "map", "max_items": 2},
    "plain_map": "map",
    "strict_map": {"type": "map", "required": ["a"], "accept": ["a", "b"]},
}
POOL = [
    None, True, False, 0, 1, 2.5, -7, 10**30, "", "a", "red", "abcd", "abcde", "éé", "ééa", "2.5", "true",
    U, U.upper(), U.replace("-", ""), f"{{{U}}}", f"urn:uuid:{U}", U[:-1], f"{U}\n",
    "2024-05-01T12:00:00Z", "2024-05-01T12:00:00+02:00", "2024-05-01 12:00:00.123456-05:30", "2024-05-01T12:00",
    "2024-05-01T12:00:00", "2024-05-01", "2024-02-30", "2024-W18-3", "20240501T120000Z", "2024-05-01T25:00:00Z",
    "2024-05-01T12:00:00Z\n", datetime(2024, 5, 1).isoformat(),
    [], [1], [1, 2], [1, 2, 3], ["abc"], ["abcd"], ["é", "éé"], [True, "x"], [None], [[1]], [{}], [{"a": 1}],
    [U, U.upper()], [U, "x"], [1.5, -2],
    {}, {"a": 1}, {"a": 1, "b": "x"}, {"a": 1, "b": 2, "c": 3}, {"b": 1}, {"a": None}, {"a": [1, "x"]},
    {"a": {"nested": 1}}, {"a": [[1]]}, {"a": "x" * 3001},
]


def gateway_error(specs: dict, args: dict) -> str | None:
    try:
        validate_args(specs, args)
    except ArgumentError as exc:
        return str(exc)
    return None


def client_error(schema: dict, args: dict) -> str | None:
    try:
        check_args(schema, args)
    except SchemaError as exc:
        return str(exc)
    return None


#: the client's wording differs only where the schema cannot know the gateway's phrase: a naive
#: datetime (no ``format``), and items of lists and values of maps ("nested ... not supported")
LOOSER_WORDING = {"naive_datetime"}


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("allow_nil", [False, True])
def test_the_client_refuses_exactly_what_the_gateway_refuses(name, allow_nil):
    raw = SPECS[name] if isinstance(SPECS[name], dict) else {"type": SPECS[name]}
    specs = {"x": parse_spec("x", {**raw, "allow_nil": allow_nil}), "y": parse_spec("y", "num")}
    schema = args_schema(specs)
    for value in POOL:
        for args in ({"x": value, "y": 1}, {"x": value}, {"y": 1}, {"x": value, "y": 1, "z": 0}):
            gateway, client = gateway_error(specs, args), client_error(schema, args)
            assert (gateway is None) == (client is None), f"{name} {args!r}: gateway {gateway!r}, client {client!r}"
            if gateway is not None and name not in LOOSER_WORDING and not gateway.startswith(('"x.', '"x[')):
                assert client == gateway, f"{name} {args!r}"


def test_defaults_are_the_gateways_business():
    specs = {"n": parse_spec("n", {"type": "num", "default_value": 2})}
    check_args(args_schema(specs), {})  # absent: the gateway fills in the default
    with pytest.raises(SchemaError, match='"n" must not be null'):
        check_args(args_schema(specs), {"n": None})
