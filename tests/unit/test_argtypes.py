"""workers.argtypes: parsing arg_types entries, checking values, validating and converting calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from workers.argtypes import (
    LIST_MAX_ITEMS,
    LIST_TYPES,
    MAP_MAX_ITEMS,
    SCALAR_TYPES,
    STRING_MAX_BYTES,
    TYPES,
    ArgSpec,
    ArgSpecError,
    ArgumentError,
    check_value,
    convert,
    parse_spec,
    validate_args,
)


def spec(raw, name="arg"):
    return parse_spec(name, raw)


def ok(raw, value, name="arg"):
    check_value(parse_spec(name, raw), value)


def bad(raw, value, name="arg") -> str:
    with pytest.raises(ArgumentError) as info:
        check_value(parse_spec(name, raw), value)
    message = str(info.value)
    assert name in message
    return message


# ----------------------------------------------------------------------- parse_spec


class TestParseSpec:
    def test_type_lists(self):
        assert set(TYPES) == set(SCALAR_TYPES) | set(LIST_TYPES) | {"map"}
        assert len(TYPES) == 14

    @pytest.mark.parametrize("kind", TYPES)
    def test_simple_form_every_type(self, kind):
        parsed = parse_spec("x", kind)
        assert parsed == ArgSpec(name="x", type=kind)
        assert parsed.allow_nil is False
        assert parsed.has_default is False

    @pytest.mark.parametrize("kind", TYPES)
    def test_extended_form_equals_simple_form(self, kind):
        assert parse_spec("x", {"type": kind}) == parse_spec("x", kind)

    def test_simple_defaults(self):
        s = spec("string")
        assert s.max_bytes == STRING_MAX_BYTES == 3000
        assert spec("list").item_limit == LIST_MAX_ITEMS == 1000
        assert spec("list").max_item_bytes == 3000
        assert spec("map").item_limit == MAP_MAX_ITEMS == 1000
        assert spec("map").strict_map is False

    def test_extended_options(self):
        s = spec({"type": "string", "max_bytes": 10, "allow_nil": True, "default_value": "hi"})
        assert (s.type, s.max_bytes, s.allow_nil, s.default, s.has_default) == ("string", 10, True, "hi", True)
        lst = spec({"type": "list_string", "max_items": 3, "max_item_bytes": 4})
        assert (lst.item_limit, lst.max_item_bytes) == (3, 4)
        m = spec({"type": "map", "required": ["a"], "accept": ["a", "b"]})
        assert m.required == ("a",) and m.accept == ("a", "b") and m.strict_map is True
        assert spec({"type": "map", "max_items": 5}).strict_map is True
        assert spec({"type": "map", "allow_nil": True}).strict_map is False

    def test_allow_nil_question_mark_spelling(self):
        assert spec({"type": "num", "allow_nil?": True}).allow_nil is True
        assert spec({"type": "num", "allow_nil?": False}).allow_nil is False

    @pytest.mark.parametrize("value", ["yes", 1, None, "true"])
    def test_allow_nil_must_be_bool(self, value):
        with pytest.raises(ArgSpecError, match='argument "flag": allow_nil must be true or false'):
            parse_spec("flag", {"type": "num", "allow_nil": value})

    @pytest.mark.parametrize("raw", ["text", "int", "", "String", {"type": "float"}, {"type": None}, {}])
    def test_unknown_type(self, raw):
        with pytest.raises(ArgSpecError, match='argument "age": unknown type') as info:
            parse_spec("age", raw)
        assert "string, num, boolean" in str(info.value)

    @pytest.mark.parametrize("raw", [5, None, ["string"], True])
    def test_not_a_type_or_object(self, raw):
        with pytest.raises(ArgSpecError, match='argument "age": expected a type name or an object'):
            parse_spec("age", raw)

    @pytest.mark.parametrize("name", ["", None, 3])
    def test_bad_argument_name(self, name):
        with pytest.raises(ArgSpecError, match="argument names must be non-empty strings"):
            parse_spec(name, "string")

    @pytest.mark.parametrize(
        ("kind", "option"),
        [
            ("num", "max_bytes"),
            ("boolean", "max_items"),
            ("uuid", "max_bytes"),
            ("any", "max_items"),
            ("datetime", "max_bytes"),
            ("string", "max_items"),
            ("string", "required"),
            ("list_num", "max_item_bytes"),
            ("list_uuid", "max_item_bytes"),
            ("list_map", "accept"),
            ("list", "required"),
            ("map", "max_bytes"),
            ("map", "max_item_bytes"),
            ("num", "bogus"),
        ],
    )
    def test_option_that_does_not_apply(self, kind, option):
        with pytest.raises(ArgSpecError) as info:
            parse_spec("field", {"type": kind, option: 1})
        message = str(info.value)
        assert message.startswith('argument "field": option ')
        assert f"option {option} does not apply to type {kind}" in message
        assert "allow_nil?" not in message  # the legacy spelling is not advertised

    @pytest.mark.parametrize("option", ["max_bytes"])
    @pytest.mark.parametrize("value", [0, -1, True, 1.5, "10", None])
    def test_size_options_must_be_positive_ints(self, option, value):
        with pytest.raises(ArgSpecError, match=f'argument "s": {option} must be a positive integer'):
            parse_spec("s", {"type": "string", option: value})

    @pytest.mark.parametrize("option", ["max_items", "max_item_bytes"])
    def test_list_size_options_must_be_positive_ints(self, option):
        with pytest.raises(ArgSpecError, match=f"{option} must be a positive integer"):
            parse_spec("l", {"type": "list", option: 0})

    @pytest.mark.parametrize("value", ["a", [1], [""], None, {"a": 1}])
    def test_required_and_accept_must_be_name_lists(self, value):
        for option in ("required", "accept"):
            with pytest.raises(ArgSpecError, match=f'argument "m": {option} must be a list of key names'):
                parse_spec("m", {"type": "map", option: value})

    def test_default_value_type_checked_at_parse_time(self):
        with pytest.raises(ArgSpecError) as info:
            parse_spec("age", {"type": "num", "default_value": "x"})
        message = str(info.value)
        assert message.startswith('argument "age": default_value is invalid:')
        assert "must be a number" in message

    @pytest.mark.parametrize(
        "raw",
        [
            {"type": "string", "max_bytes": 2, "default_value": "abc"},
            {"type": "boolean", "default_value": 0},
            {"type": "uuid", "default_value": "nope"},
            {"type": "list_num", "default_value": ["1"]},
            {"type": "list_string", "max_items": 1, "default_value": ["a", "b"]},
            {"type": "datetime", "default_value": "2024-05-01T12:00:00"},
            {"type": "map", "required": ["k"], "default_value": {}},
        ],
    )
    def test_invalid_defaults(self, raw):
        with pytest.raises(ArgSpecError, match="default_value is invalid"):
            parse_spec("d", raw)

    @pytest.mark.parametrize(
        ("raw", "default"),
        [
            ({"type": "num", "default_value": 0}, 0),
            ({"type": "boolean", "default_value": False}, False),
            ({"type": "string", "default_value": ""}, ""),
            ({"type": "list", "default_value": []}, []),
            ({"type": "map", "default_value": {"a": {"b": 1}}}, {"a": {"b": 1}}),
            ({"type": "any", "default_value": [1, {"x": None}]}, [1, {"x": None}]),
        ],
    )
    def test_falsy_and_structured_defaults_are_set(self, raw, default):
        parsed = spec(raw)
        assert parsed.has_default is True
        assert parsed.default == default

    def test_null_default_means_no_default(self):
        parsed = spec({"type": "num", "default_value": None})
        assert parsed.has_default is False

    @pytest.mark.parametrize(
        "raw",
        [
            "string",
            {"type": "string", "max_bytes": 7, "allow_nil": True, "default_value": "x"},
            {"type": "list", "max_items": 2, "max_item_bytes": 9},
            {"type": "list_num", "max_items": 5, "default_value": [1, 2.5]},
            {"type": "map"},
            {"type": "map", "required": ["a"], "accept": ["a", "b"], "max_items": 4},
            {"type": "any", "allow_nil?": True},
            "naive_datetime",
        ],
    )
    def test_to_json_round_trips(self, raw):
        parsed = spec(raw)
        assert parse_spec("arg", parsed.to_json()) == parsed

    @pytest.mark.parametrize(
        "raw",
        ["list", "list_string", "list_num", "list_uuid", "list_map", {"type": "map", "required": ["a"]}],
        ids=["list", "list_string", "list_num", "list_uuid", "list_map", "strict_map"],
    )
    def test_to_json_round_trips_without_explicit_max_items(self, raw):
        # BUG: to_json spells out max_items=1000, parse_spec stores it as an explicit 1000 while
        # the original has max_items=None, so the round trip is not equal (item_limit is the same).
        parsed = spec(raw)
        again = parse_spec("arg", parsed.to_json())
        assert again.item_limit == parsed.item_limit
        assert again == parsed

    def test_to_json_spells_out_defaults(self):
        assert spec("string").to_json() == {"type": "string", "allow_nil": False, "max_bytes": 3000}
        assert spec("list").to_json() == {"type": "list", "allow_nil": False, "max_items": 1000,
                                          "max_item_bytes": 3000}
        assert spec("map").to_json() == {"type": "map", "allow_nil": False}
        assert spec({"type": "map", "required": ["k"]}).to_json() == {
            "type": "map", "allow_nil": False, "max_items": 1000, "required": ["k"], "accept": []}
        assert spec({"type": "num", "default_value": 3}).to_json() == {
            "type": "num", "allow_nil": False, "default_value": 3}


# ---------------------------------------------------------------------- check_value


class TestString:
    @pytest.mark.parametrize("value", ["", "hello", "é" * 1500, "x" * 3000])
    def test_accepts(self, value):
        ok("string", value)

    @pytest.mark.parametrize("value", [1, 1.5, True, None, ["a"], {"a": 1}])
    def test_rejects_non_strings(self, value):
        assert "must be a string" in bad("string", value, name="title")

    def test_default_limit_is_bytes_not_characters(self):
        ok("string", "é" * 1500)  # 3000 bytes
        message = bad("string", "é" * 1501, name="bio")  # 1501 characters, 3002 bytes
        assert message == '"bio" is too long: max 3000 bytes, got 3002 bytes'
        assert "too long" in bad("string", "x" * 3001)

    @pytest.mark.parametrize(
        ("value", "fits"),
        [("abcde", True), ("abcdef", False), ("éé", True), ("ééé", False), ("€ab", True), ("€abc", False),
         ("😀", True), ("😀a", True), ("😀ab", False)],
    )
    def test_max_bytes_counts_utf8_bytes(self, value, fits):
        raw = {"type": "string", "max_bytes": 5}
        if fits:
            ok(raw, value)
        else:
            message = bad(raw, value, name="nick")
            assert message == f'"nick" is too long: max 5 bytes, got {len(value.encode())} bytes'


class TestNum:
    @pytest.mark.parametrize("value", [0, -3, 42, 1.5, -0.0, 10**30, 1e300])
    def test_accepts(self, value):
        ok("num", value)

    @pytest.mark.parametrize("value", [True, False, "30", "1.5", None, [1], {"n": 1}])
    def test_rejects(self, value):
        message = bad("num", value, name="age")
        assert message.startswith('"age" must be a number, got ')

    def test_message_shows_kind_and_value(self):
        assert bad("num", "30", name="age") == '"age" must be a number, got string "30"'
        assert bad("num", True, name="age") == '"age" must be a number, got boolean true'


class TestBoolean:
    @pytest.mark.parametrize("value", [True, False])
    def test_accepts(self, value):
        ok("boolean", value)

    @pytest.mark.parametrize("value", [0, 1, "true", "false", None, [], 0.0])
    def test_rejects(self, value):
        assert "must be true or false" in bad("boolean", value, name="active")


UUIDS = {
    1: "c232ab00-9414-11ec-b3c8-9e6bdeced846",
    3: "5df41881-3aed-3515-88a7-2f4a814cf09e",
    4: "f47ac10b-58cc-4372-a567-0e02b2c3d479",
    5: "2ed6657d-e927-568b-95e1-2665a8aea6a2",
    6: "1ec9414c-232a-6b00-b3c8-9e6bdeced846",
    7: "017f22e2-79b0-7cc3-98c4-dc0c0c07398f",
    8: "320c3d4d-cc00-875b-8ec9-32d5f69181c0",
}


class TestUuid:
    @pytest.mark.parametrize("version", sorted(UUIDS))
    def test_every_version(self, version):
        value = UUIDS[version]
        assert value[14] == str(version)
        ok("uuid", value)
        ok("uuid", value.upper())

    @pytest.mark.parametrize(
        "value",
        [
            "00000000-0000-0000-0000-000000000000",
            "f47ac10b58cc4372a5670e02b2c3d479",
            "F47AC10B58CC4372A5670E02B2C3D479",
            "urn:uuid:f47ac10b-58cc-4372-a567-0e02b2c3d479",
            "URN:UUID:f47ac10b-58cc-4372-a567-0e02b2c3d479",
            "{f47ac10b-58cc-4372-a567-0e02b2c3d479}",
        ],
    )
    def test_accepted_spellings(self, value):
        ok("uuid", value)

    @pytest.mark.parametrize(
        "value",
        [
            "",
            "not-a-uuid",
            "f47ac10b-58cc-4372-a567-0e02b2c3d47",  # one digit short
            "f47ac10b-58cc-4372-a567-0e02b2c3d4799",  # one digit long
            "g47ac10b-58cc-4372-a567-0e02b2c3d479",  # not hex
            "f47ac10b58cc-4372-a567-0e02b2c3d479",  # dash missing
            "f47ac10b-58cc-4372-a567-0e02b2c3d479 ",
            " f47ac10b-58cc-4372-a567-0e02b2c3d479",
            "{f47ac10b-58cc-4372-a567-0e02b2c3d479",
            "urn:uuid:",
            "urn:uuid:{f47ac10b-58cc-4372-a567-0e02b2c3d479}",
            "f47ac10b58cc4372a5670e02b2c3d47",
            123,
            None,
            ["f47ac10b-58cc-4372-a567-0e02b2c3d479"],
        ],
    )
    def test_rejects_garbage(self, value):
        message = bad("uuid", value, name="user_id")
        assert message.startswith('"user_id" must be a UUID string, got ')


class TestDatetime:
    @pytest.mark.parametrize(
        "value",
        ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00+00:00", "2024-05-01T12:00:00+02:00",
         "2024-05-01T12:00:00.123456-05:30", "2024-05-01 12:00:00Z"],
    )
    def test_aware_accepts_offsets_including_z(self, value):
        ok("datetime", value)

    @pytest.mark.parametrize(
        "value", ["2024-05-01T12:00:00", "2024-05-01", "yesterday", "2024-13-01T00:00:00Z", "", 1714564800,
                  None, True],
    )
    def test_aware_rejects(self, value):
        message = bad("datetime", value, name="at")
        assert message.startswith('"at" must be an ISO 8601 datetime with a UTC offset')

    @pytest.mark.parametrize("value", ["2024-05-01T12:00:00", "2024-05-01T12:00:00.5", "2024-05-01 00:00"])
    def test_naive_accepts(self, value):
        ok("naive_datetime", value)

    @pytest.mark.parametrize(
        "value", ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00+02:00", "soon", "2024-02-30T00:00:00", 5, None],
    )
    def test_naive_rejects_offsets_and_garbage(self, value):
        message = bad("naive_datetime", value, name="local")
        assert message.startswith('"local" must be an ISO 8601 datetime without offset')


class TestList:
    @pytest.mark.parametrize("value", [[], ["a", 1, 2.5, True, False], ["é" * 1500]])
    def test_flat_scalars(self, value):
        ok("list", value)

    @pytest.mark.parametrize(
        ("value", "where"),
        [([[1]], "tags[0]"), (["a", {"b": 1}], "tags[1]"), ([1, 2, None], "tags[2]")],
    )
    def test_nested_and_null_items_rejected(self, value, where):
        message = bad("list", value, name="tags")
        assert message.startswith(f'"{where}" must be a string, number or boolean (nested values are not supported)')

    @pytest.mark.parametrize("value", ["a,b", {"a": 1}, 3, None])
    def test_not_a_list(self, value):
        assert "must be a list" in bad("list", value, name="tags")

    def test_item_byte_limit(self):
        ok("list", ["x" * 3000])
        assert bad("list", ["ok", "é" * 1501], name="tags") == '"tags[1]" is too long: max 3000 bytes, got 3002 bytes'
        raw = {"type": "list", "max_item_bytes": 3}
        ok(raw, ["abc", 12345])
        assert "too long: max 3 bytes, got 4 bytes" in bad(raw, ["éé"], name="tags")

    def test_max_items(self):
        ok("list", [1] * 1000)
        assert bad("list", [1] * 1001, name="tags") == '"tags" has too many items: max 1000, got 1001'
        raw = {"type": "list", "max_items": 2}
        ok(raw, [1, 2])
        assert "too many items: max 2, got 3" in bad(raw, [1, 2, 3], name="tags")


class TestTypedLists:
    def test_list_string(self):
        ok("list_string", ["a", "", "é"])
        assert bad("list_string", ["a", 1], name="names").startswith('"names[1]" must be a string')
        assert bad("list_string", ["a", None], name="names").startswith('"names[1]" must be a string')
        raw = {"type": "list_string", "max_item_bytes": 2, "max_items": 2}
        ok(raw, ["é", "ab"])
        assert "is too long: max 2 bytes, got 3 bytes" in bad(raw, ["abc"], name="names")
        assert "too many items: max 2, got 3" in bad(raw, ["a", "b", "c"], name="names")
        assert "must be a list" in bad("list_string", "abc", name="names")

    def test_list_num(self):
        ok("list_num", [1, 2.5, -3])
        assert bad("list_num", [1, True], name="scores").startswith('"scores[1]" must be a number')
        assert bad("list_num", ["1"], name="scores").startswith('"scores[0]" must be a number')
        assert "too many items: max 1, got 2" in bad({"type": "list_num", "max_items": 1}, [1, 2], name="scores")

    def test_list_uuid(self):
        ok("list_uuid", [UUIDS[4], UUIDS[7], "00000000-0000-0000-0000-000000000000"])
        assert bad("list_uuid", [UUIDS[4], "x"], name="ids").startswith('"ids[1]" must be a UUID string')
        assert bad("list_uuid", [5], name="ids").startswith('"ids[0]" must be a UUID string')

    def test_list_map(self):
        ok("list_map", [{}, {"a": {"nested": [1, {"deep": True}]}}])
        assert bad("list_map", [{}, []], name="rows").startswith('"rows[1]" must be an object')
        assert bad("list_map", [None], name="rows").startswith('"rows[0]" must be an object')
        assert "too many items" in bad({"type": "list_map", "max_items": 1}, [{}, {}], name="rows")


class TestMap:
    def test_simple_map_only_checks_size_and_allows_nesting(self):
        ok("map", {})
        ok("map", {"a": {"b": {"c": [1, [2, {"d": None}]]}}, "n": None, "s": "x" * 5000})
        ok("map", {str(i): i for i in range(1000)})
        message = bad("map", {str(i): i for i in range(1001)}, name="attrs")
        assert message == '"attrs" has too many keys: max 1000, got 1001'

    @pytest.mark.parametrize("value", [[], "x", 1, True, None])
    def test_not_an_object(self, value):
        assert "must be an object" in bad("map", value, name="attrs")

    def test_strict_max_items(self):
        raw = {"type": "map", "max_items": 2}
        ok(raw, {"a": 1, "b": 2})
        assert "too many keys: max 2, got 3" in bad(raw, {"a": 1, "b": 2, "c": 3}, name="attrs")

    def test_required(self):
        raw = {"type": "map", "required": ["id", "name"]}
        ok(raw, {"id": 1, "name": "x", "extra": True})
        message = bad(raw, {"extra": 1}, name="user")
        assert message == '"user" is missing required keys: id, name'

    def test_accept(self):
        raw = {"type": "map", "accept": ["a", "b"]}
        ok(raw, {"a": 1})
        ok(raw, {})
        message = bad(raw, {"a": 1, "z": 2, "c": 3}, name="opts")
        assert message == '"opts" has keys that are not accepted: c, z'

    def test_empty_accept_means_no_restriction(self):
        ok({"type": "map", "accept": []}, {"anything": 1})

    def test_strict_values_must_be_flat(self):
        raw = {"type": "map", "required": []}
        ok(raw, {"s": "x", "n": 1.5, "b": False, "l": ["a", 1, True], "e": []})
        assert bad(raw, {"o": {"x": 1}}, name="m").startswith('"m.o" must be a string, number, boolean or flat list')
        assert bad(raw, {"n": None}, name="m").startswith('"m.n" must be a string, number, boolean or flat list')
        assert bad(raw, {"l": [1, [2]]}, name="m").startswith('"m.l[1]" must be a string, number or boolean')
        assert bad(raw, {"l": [{"x": 1}]}, name="m").startswith('"m.l[0]" must be a string, number or boolean')
        assert bad(raw, {"l": [None]}, name="m").startswith('"m.l[0]"')

    def test_strict_value_limits(self):
        raw = {"type": "map", "max_items": 5}
        ok(raw, {"s": "é" * 1500, "l": [0] * 1000})
        assert bad(raw, {"s": "é" * 1501}, name="m") == '"m.s" is too long: max 3000 bytes, got 3002 bytes'
        assert bad(raw, {"l": [0] * 1001}, name="m") == '"m.l" has too many items: max 1000, got 1001'


class TestAny:
    @pytest.mark.parametrize("value", [1, "x", True, [1, [2]], {"a": {"b": None}}, 0.5, ""])
    def test_accepts_everything(self, value):
        ok("any", value)


# -------------------------------------------------------------------- validate_args


def specs(**raw):
    return {name: parse_spec(name, r) for name, r in raw.items()}


class TestValidateArgs:
    def test_valid_call_returns_every_declared_name(self):
        declared = specs(name="string", age={"type": "num", "default_value": 18},
                         note={"type": "string", "allow_nil": True})
        assert validate_args(declared, {"name": "Ann"}) == {"name": "Ann", "age": 18, "note": None}
        assert validate_args(declared, {"name": "Ann", "age": 30, "note": "hi"}) == {
            "name": "Ann", "age": 30, "note": "hi"}

    def test_missing_argument(self):
        with pytest.raises(ArgumentError) as info:
            validate_args(specs(name="string", age="num"), {"name": "x"})
        assert str(info.value) == 'missing argument "age"'

    def test_null_without_allow_nil(self):
        with pytest.raises(ArgumentError) as info:
            validate_args(specs(age="num"), {"age": None})
        assert str(info.value) == '"age" must not be null'

    def test_null_with_allow_nil(self):
        assert validate_args(specs(age={"type": "num", "allow_nil": True}), {"age": None}) == {"age": None}
        assert validate_args(specs(age={"type": "num", "allow_nil?": True}), {}) == {"age": None}

    def test_default_applied_only_when_absent(self):
        declared = specs(age={"type": "num", "default_value": 18, "allow_nil": True})
        assert validate_args(declared, {}) == {"age": 18}
        assert validate_args(declared, {"age": None}) == {"age": None}
        assert validate_args(declared, {"age": 3}) == {"age": 3}

    def test_default_not_applied_on_explicit_null_without_allow_nil(self):
        declared = specs(age={"type": "num", "default_value": 18})
        with pytest.raises(ArgumentError, match='"age" must not be null'):
            validate_args(declared, {"age": None})

    def test_falsy_defaults_are_applied(self):
        declared = specs(flag={"type": "boolean", "default_value": False}, n={"type": "num", "default_value": 0},
                         s={"type": "string", "default_value": ""})
        assert validate_args(declared, {}) == {"flag": False, "n": 0, "s": ""}

    def test_values_are_type_checked(self):
        with pytest.raises(ArgumentError, match='"age" must be a number'):
            validate_args(specs(name="string", age="num"), {"name": "x", "age": "30"})

    def test_unknown_argument(self):
        with pytest.raises(ArgumentError) as info:
            validate_args(specs(name="string"), {"name": "x", "admin": True})
        assert str(info.value) == 'unknown argument "admin" (expected: "name")'

    def test_unknown_arguments_are_listed_sorted(self):
        with pytest.raises(ArgumentError) as info:
            validate_args(specs(a="num", b="num"), {"zeta": 1, "a": 1, "alpha": 2})
        assert str(info.value) == 'unknown arguments "alpha", "zeta" (expected: "a", "b")'

    def test_a_function_that_declares_no_arguments_ignores_what_it_is_sent(self):
        """Reference §2.3: with no arg_types, request args are silently ignored."""
        assert validate_args({}, {}) == {}
        assert validate_args({}, {"x": 1, "y": {"z": [1]}}) == {}

    def test_unknown_checked_before_missing(self):
        with pytest.raises(ArgumentError, match="unknown argument"):
            validate_args(specs(a="num"), {"b": 1})

    def test_does_not_modify_input(self):
        args = {"name": "x"}
        validate_args(specs(name="string", age={"type": "num", "default_value": 1}), args)
        assert args == {"name": "x"}


# -------------------------------------------------------------------------- convert


class TestConvert:
    def test_datetime_with_z(self):
        value = convert(spec("datetime"), "2024-05-01T12:00:00Z")
        assert value == datetime(2024, 5, 1, 12, tzinfo=UTC)
        assert value.utcoffset() == timedelta(0)

    def test_datetime_with_offset(self):
        value = convert(spec("datetime"), "2024-05-01T12:00:00+02:00")
        assert value == datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=2)))
        assert value.utcoffset() == timedelta(hours=2)

    def test_naive_datetime(self):
        value = convert(spec("naive_datetime"), "2024-05-01T12:30:15.250000")
        assert value == datetime(2024, 5, 1, 12, 30, 15, 250000)
        assert value.tzinfo is None

    def test_null_stays_null(self):
        assert convert(spec({"type": "datetime", "allow_nil": True}), None) is None

    @pytest.mark.parametrize(
        ("kind", "value"),
        [("string", "2024-05-01T12:00:00Z"), ("num", 3), ("list", [1]), ("map", {"a": 1}), ("any", None),
         ("uuid", UUIDS[4])],
    )
    def test_other_types_unchanged(self, kind, value):
        assert convert(spec(kind), value) is value


def test_strict_map_with_required_keys_outside_accept_is_refused():
    with pytest.raises(ArgSpecError, match="required keys b are not in accept"):
        parse_spec("m", {"type": "map", "required": ["a", "b"], "accept": ["a"]})
