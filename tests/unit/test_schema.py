"""workers.schema: the JSON Schema of a function's arguments accepts exactly what the gateway does.

Table-driven: for every argument type and option, values the gateway accepts and values it
refuses, plus a pool of values of every JSON kind; each is checked with
``validate_args`` and with ``jsonschema``'s draft 2020-12 validator (extended with our
``x-max-bytes`` keyword), and the two must agree.
"""

from __future__ import annotations

import itertools
import re
from datetime import date

import pytest
from jsonschema import Draft202012Validator, ValidationError, validators

from workers.argtypes import (
    DATE_PATTERN,
    DATETIME_PATTERN,
    NAIVE_DATETIME_PATTERN,
    TYPES,
    ArgumentError,
    parse_spec,
    utf8_size,
    validate_args,
)
from workers.funconfig import load_funconfig
from workers.schema import MAX_BYTES, arg_schema, args_schema


def _max_bytes(validator, limit, instance, schema):
    if validator.is_type(instance, "string") and utf8_size(instance) > limit:
        yield ValidationError(f"{instance!r} is longer than {limit} bytes of UTF-8")


Validator = validators.extend(Draft202012Validator, {MAX_BYTES: _max_bytes})


class Both:
    """The gateway's check and the published schema (checked against the meta-schema) of one
    set of argument specs."""

    def __init__(self, specs: dict) -> None:
        self.specs = specs
        schema = args_schema(specs)
        Validator.check_schema(schema)
        self.validator = Validator(schema)

    def gateway_accepts(self, args: dict) -> bool:
        try:
            validate_args(self.specs, args)
        except ArgumentError:
            return False
        return True

    def agree(self, args: dict) -> bool:
        """Both sides give the same answer; returns it."""
        gateway, schema = self.gateway_accepts(args), self.validator.is_valid(args)
        assert gateway == schema, f"gateway {'accepts' if gateway else 'refuses'} {args!r}, the schema does not"
        return gateway


def agree(specs: dict, args: dict) -> bool:
    return Both(specs).agree(args)


# ------------------------------------------------------------------------- the table

U = "f47ac10b-58cc-4372-a567-0e02b2c3d479"
UUIDS_OK = [U, U.upper(), U.replace("-", ""), f"{{{U}}}", f"{{{U.replace('-', '')}}}", f"urn:uuid:{U}",
            f"URN:UUID:{U}", f"Urn:Uuid:{U.replace('-', '')}", "00000000-0000-0000-0000-000000000000"]
UUIDS_BAD = ["", "x", U[:-1], U + "0", U.replace("-", "", 1), f" {U}", f"{U} ", f"{U}\n", f"{{{U}", f"{U}}}",
             f"urn:uuid:{{{U}}}", "urn:uuid:", f"uuid:{U}", U.replace("f", "g"), U.replace("-", "_"),
             "f47ac10b-58cc-4372-a567-0e02b2c3d47９", 123, True, [U], {"u": U}]

DATES_OK = ["2024-05-01", "0001-01-01", "9999-12-31", "2024-02-29", "2000-02-29", "1600-02-29", "2023-02-28",
            "2024-04-30", "2024-12-31"]
DATES_BAD = ["20240501", "2024-W18-3", "2024-W18", "2024-5-1", "2024-05", "2024-02-30", "2023-02-29", "1900-02-29",
             "2100-02-29", "2024-04-31", "2024-13-01", "2024-00-10", "2024-05-00", "2024-05-32", "0000-01-01",
             "2024-05-01T00:00", "2024-05-01 ", " 2024-05-01", "2024-05-01\n", "２０２４-05-01", "+2024-05-01",
             "12024-05-01", 20240501, None, True, ["2024-05-01"]]

AWARE_OK = ["2024-05-01T12:00:00Z", "2024-05-01T12:00Z", "2024-05-01 12:00:00Z", "2024-05-01T12:00:00+00:00",
            "2024-05-01T12:00:00-05:30", "2024-05-01T12:00:00.5Z", "2024-05-01T12:00:00.123456+02:00",
            "2024-05-01T23:59:59.999999-23:59", "2024-05-01T00:00:00-00:00", "0001-01-01T00:00Z",
            "2024-02-29T12:00:00Z", "9999-12-31T23:59:59+23:59"]
AWARE_BAD = ["2024-05-01T12:00:00", "2024-05-01", "2024-05-01T12:00:00z", "2024-05-01t12:00:00Z",
             "2024-05-01X12:00:00Z", "2024-05-01T12Z", "2024-05-01T1200Z", "20240501T120000Z",
             "2024-W18-3T12:00Z", "2024-05-01T12:00:00.1234567Z", "2024-05-01T12:00:00.Z",
             "2024-05-01T12:00:00,5Z", "2024-05-01T12:00:00+02", "2024-05-01T12:00:00+0200",
             "2024-05-01T12:00:00+02:00:30", "2024-05-01T12:00:00+24:00", "2024-05-01T12:00:00+01:60",
             "2024-05-01T24:00:00Z", "2024-05-01T23:60:00Z", "2024-05-01T23:59:60Z", "2024-05-01T12:00:00 +01:00",
             "2024-05-01T12:00:00UTC", "2023-02-29T12:00:00Z", "2024-04-31T00:00Z", "0000-01-01T00:00Z",
             "2024-05-01T12:00:00Z\n", "2024-05-01T12:00:00Z ", "yesterday", "", 1714564800, True, None]
NAIVE_OK = ["2024-05-01T12:00:00", "2024-05-01T12:00", "2024-05-01 12:00", "2024-05-01T12:00:00.5",
            "2024-05-01T12:00:00.000001", "2024-05-01", "2024-02-29", "2024-02-29T23:59:59"]
NAIVE_BAD = ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00+02:00", "2024-05-01T12", "2024-05-01T12:00:00.1234567",
             "20240501", "2024-W18-3", "2024-05-01t12:00", "2024-02-30", "2023-02-29T00:00", "2024-05-01\n",
             "2024-05-01T12:00:00\n", "soon", 5, None, False]

MAP_NESTED = {"a": {"b": [1, {"c": None}]}, "d": None}

# (spec, values the gateway accepts, values it refuses); the name of the argument is "x"
TABLE = [
    ("string", ["", "abc", "é" * 1500, "a" * 3000, "€" * 1000, "😀" * 750], ["é" * 1501, "a" * 3001, "😀" * 751]),
    ({"type": "string", "max_bytes": 4}, ["abcd", "éé", "€a", "😀", "\ud800", ""],
     ["abcde", "ééa", "€ab", "😀a", "\ud800\ud800", 4]),
    ({"type": "string", "enum": ["a", "b", "é"]}, ["a", "b", "é"], ["c", "A", "", "a ", 1, None]),
    ({"type": "string", "enum": ["a", "b"], "allow_nil": True}, ["a", None], ["c", 0]),
    ({"type": "string", "enum": ["ab", "abc"], "max_bytes": 3}, ["ab", "abc"], ["abcd", "a"]),
    ("num", [0, -1, 1.5, 1e308, -1e-308, 10**30, 2**63], [True, False, "1", None, [1], {"n": 1}]),
    ({"type": "num", "enum": [1, 2.5, -3]}, [1, 1.0, 2.5, -3, -3.0], [0, 3, 2, True, "1", None, 1.0000001]),
    ({"type": "num", "enum": [0, 1], "allow_nil": True}, [0, 1, None, 0.0], [False, True, 2]),
    ("boolean", [True, False], [0, 1, "true", None, [], "false"]),
    ("any", [0, "", False, [], {}, [None], MAP_NESTED, 1.5], [None]),
    ({"type": "any", "allow_nil": True}, [None, 0, {}], []),
    ("uuid", UUIDS_OK, UUIDS_BAD),
    ("date", DATES_OK, DATES_BAD),
    ("datetime", AWARE_OK, AWARE_BAD),
    ("naive_datetime", NAIVE_OK, NAIVE_BAD),
    ("list", [[], ["a", 1, 2.5, True, False], ["é" * 1500], [1] * 1000],
     [[None], [[1]], [{}], ["é" * 1501], [1] * 1001, "abc", {}, None]),
    ({"type": "list", "max_items": 2, "max_item_bytes": 3}, [[1, 2], ["€"], [12345], ["abc", True]],
     [[1, 2, 3], ["€a"], ["abcd"]]),
    ("list_string", [[], ["a", ""], ["é" * 1500]], [[1], [None], [True], ["é" * 1501], [["a"]], "a"]),
    ({"type": "list_string", "max_items": 1, "max_item_bytes": 2}, [["é"], ["ab"], []], [["a", "b"], ["abc"], ["€"]]),
    ("list_num", [[], [1, 2.5, -3, 10**20]], [[True], ["1"], [None], [[1]], 1]),
    ({"type": "list_num", "max_items": 3}, [[1, 2, 3]], [[1, 2, 3, 4]]),
    ("list_uuid", [[], UUIDS_OK], [[u] for u in UUIDS_BAD] + [U]),
    ("list_map", [[], [{}], [MAP_NESTED, {"a": 1}]], [[[]], [None], ["{}"], [1], {}]),
    ({"type": "list_map", "max_items": 1}, [[{}]], [[{}, {}]]),
    ("map", [{}, MAP_NESTED, {str(i): i for i in range(1000)}],
     [[], "x", 1, True, None, {str(i): i for i in range(1001)}]),
    ({"type": "map", "required": ["k"], "accept": ["k", "v"]},
     [{"k": 1}, {"k": "x", "v": [1, "a", True, 2.5]}, {"k": []}, {"k": "é" * 1500}, {"k": [1] * 1000},
      {"k": ["é" * 2000]}],
     [{}, {"v": 1}, {"k": 1, "z": 2}, {"k": {"a": 1}}, {"k": [[1]]}, {"k": [{}]}, {"k": None}, {"k": [None]},
      {"k": "é" * 1501}, {"k": [1] * 1001}, []]),
    ({"type": "map", "max_items": 2}, [{}, {"a": 1, "b": "x"}, {"a": [1, "b"]}],
     [{"a": 1, "b": 2, "c": 3}, {"a": {}}, {"a": None}]),
    ({"type": "map", "accept": ["a", "b"]}, [{}, {"a": 1}, {"a": 1, "b": False}], [{"c": 1}, {"a": 1, "c": 1}]),
    ({"type": "map", "required": ["a", "b"]}, [{"a": 1, "b": 2}, {"a": 1, "b": 2, "zz": 3}], [{"a": 1}, {"b": 1}]),
]

# every value goes through every spec too: a value of one type must be refused by the others
POOL = [None, True, False, 0, -1, 1.5, "", "x", "1", "true", [], [1], ["x"], [None], {}, {"k": 1}, {"k": {}},
        U, f"urn:uuid:{U}", "2024-05-01", "2024-05-01T12:00:00Z", "2024-05-01T12:00:00", "2024-02-30"]


def _label(raw) -> str:
    return raw if isinstance(raw, str) else "-".join(f"{k}={v}" for k, v in raw.items() if k != "type") \
        .join([raw["type"] + "(", ")"])


def _cases():
    for raw, good, bad in TABLE:
        for index, value in enumerate(good):
            yield pytest.param(raw, value, True, id=f"{_label(raw)}-ok{index}")
        for index, value in enumerate(bad):
            yield pytest.param(raw, value, False, id=f"{_label(raw)}-bad{index}")


@pytest.mark.parametrize(("raw", "value", "accepted"), list(_cases()))
def test_table(raw, value, accepted):
    specs = {"x": parse_spec("x", raw)}
    assert agree(specs, {"x": value}) is accepted


@pytest.mark.parametrize("raw", [raw for raw, _, _ in TABLE], ids=[_label(raw) for raw, _, _ in TABLE])
def test_pool_of_every_kind(raw):
    for nullable in (False, True):
        spec = dict({"type": raw} if isinstance(raw, str) else raw)
        spec.setdefault("allow_nil", nullable)
        both = Both({"x": parse_spec("x", spec)})
        for value in POOL:
            both.agree({"x": value})


def test_table_covers_every_type_and_option():
    kinds = {raw if isinstance(raw, str) else raw["type"] for raw, _, _ in TABLE}
    assert kinds == set(TYPES)
    options = {key for raw, _, _ in TABLE if isinstance(raw, dict) for key in raw}
    assert options >= {"max_bytes", "enum", "allow_nil", "max_items", "max_item_bytes", "required", "accept"}


# ---------------------------------------------------------- the calendar in the patterns


def _calendar_strings():
    years = [0, 1, 2, 3, 4, 99, 100, 400, 1600, 1700, 1800, 1896, 1900, 1904, 1999, 2000, 2023, 2024, 2100, 2400,
             9996, 9999]
    for year, month, day in itertools.product(years, range(14), range(33)):
        yield f"{year:04d}-{month:02d}-{day:02d}"


def _real_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def test_date_pattern_is_the_calendar():
    for text in _calendar_strings():
        expected = _real_date(text)
        assert bool(re.search(DATE_PATTERN, text)) is expected, text
        assert bool(re.search(NAIVE_DATETIME_PATTERN, text)) is expected, text
        assert bool(re.search(NAIVE_DATETIME_PATTERN, f"{text}T00:00")) is expected, text
        assert bool(re.search(DATETIME_PATTERN, f"{text} 23:59:59.5-01:00")) is expected, text


@pytest.mark.parametrize("kind", ["date", "naive_datetime", "datetime"])
def test_calendar_agrees_through_validate_args(kind):
    both = Both({"x": parse_spec("x", kind)})
    suffix = {"date": "", "naive_datetime": "T12:30", "datetime": "T12:30:00Z"}[kind]
    for text in _calendar_strings():
        assert both.agree({"x": text + suffix}) is _real_date(text)


# ---------------------------------------------------------------- whole argument maps


SPECS = {name: parse_spec(name, raw) for name, raw in {
    "s": "string",
    "n": {"type": "num", "default_value": 2},
    "note": {"type": "string", "allow_nil": True},
    "tags": {"type": "list_string", "allow_nil": True, "default_value": ["a"]},
    "level": {"type": "string", "enum": ["low", "high"], "default_value": "low"},
}.items()}


@pytest.mark.parametrize(
    ("args", "accepted"),
    [
        ({"s": "x"}, True),
        ({"s": "x", "n": 3, "note": None, "tags": None, "level": "high"}, True),
        ({"s": "x", "note": "y", "tags": ["b"]}, True),
        ({}, False),                           # s is required
        ({"n": 1}, False),
        ({"s": None}, False),                  # null without allow_nil
        ({"s": "x", "n": None}, False),        # a default does not make null acceptable
        ({"s": "x", "level": None}, False),
        ({"s": "x", "zz": 1}, False),          # undeclared key
        ({"s": "x", "level": "mid"}, False),
        ({"s": 1}, False),
    ],
)
def test_whole_args(args, accepted):
    assert agree(SPECS, args) is accepted


@pytest.mark.parametrize("args", [{}, {"anything": [1, {"x": None}]}, {"s": None}])
def test_no_declared_arguments_accepts_any_object(args):
    assert agree({}, args) is True
    assert args_schema({}) == {"type": "object"}


# ------------------------------------------------------------------------ the shapes


def schema_of(raw) -> dict:
    return arg_schema(parse_spec("x", raw))


def test_shapes_of_scalars():
    assert schema_of("string") == {"type": "string", "maxLength": 3000, MAX_BYTES: 3000}
    assert schema_of({"type": "string", "enum": ["a"], "allow_nil": True}) == {
        "type": ["string", "null"], "maxLength": 3000, MAX_BYTES: 3000, "enum": ["a", None]}
    assert schema_of({"type": "num", "default_value": 2}) == {"type": "number", "default": 2}
    assert schema_of("boolean") == {"type": "boolean"}
    assert schema_of({"type": "any", "allow_nil": True}) == {}
    assert schema_of("any") == {"not": {"type": "null"}}
    assert schema_of("uuid")["format"] == "uuid"
    assert schema_of("datetime")["format"] == "date-time"
    assert "format" not in schema_of("naive_datetime")
    assert schema_of("date") == {"type": "string", "format": "date", "pattern": DATE_PATTERN}


def test_shapes_of_containers():
    assert schema_of({"type": "list", "max_items": 5}) == {
        "type": "array", "maxItems": 5,
        "items": {"type": ["string", "number", "boolean"], "maxLength": 3000, MAX_BYTES: 3000}}
    assert schema_of("list_map") == {"type": "array", "maxItems": 1000, "items": {"type": "object"}}
    assert schema_of("map") == {"type": "object", "maxProperties": 1000}
    strict = schema_of({"type": "map", "required": ["k"], "accept": ["k", "v"], "allow_nil": True})
    assert strict["type"] == ["object", "null"]
    assert strict["required"] == ["k"]
    assert strict["propertyNames"] == {"enum": ["k", "v"]}
    assert strict["additionalProperties"]["type"] == ["string", "number", "boolean", "array"]


def test_args_schema_shape():
    schema = args_schema(SPECS)
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["s"]
    assert list(schema["properties"]) == ["s", "n", "note", "tags", "level"]  # declaration order
    assert schema["properties"]["tags"]["default"] == ["a"]


def test_funconfig_builds_its_schema_once():
    config = load_funconfig({"service": "svc", "request_type": "f", "arg_types": {"a": "num"}})
    assert config.args_schema is config.args_schema
    assert config.args_schema == args_schema(config.arg_types)
    assert config == load_funconfig(config.to_json())  # the cache is not part of equality
