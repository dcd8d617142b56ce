"""workers.typehints: arguments derived from type hints when @api.function gets no arg_types.

This module uses ``from __future__ import annotations``: every hint below reaches the
decorator as a string and is evaluated with ``typing.get_type_hints``. A few tests set real
(non-string) annotations by hand.
"""

from __future__ import annotations

import dataclasses
import typing
import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal, Optional, Union

import pytest

from workers import GenApi, MaxBytes, MaxItemBytes, MaxItems
from workers.argtypes import ArgumentError, validate_args
from workers.errors import FunConfigError
from workers.genapi import first_paragraph
from workers.runtime import call_arguments
from workers.typehints import derive

U = "f47ac10b-58cc-4372-a567-0e02b2c3d479"


def register(func, **options):
    """Register ``func`` on a fresh service; its config."""
    return GenApi("svc").function(**options)(func).genapi_config


def arg_types_of(func, **options) -> dict:
    return {name: spec.to_json() for name, spec in register(func, **options).arg_types.items()}


# --------------------------------------------------------------------------- mappings


def f_str(x: str): ...
def f_int(x: int): ...
def f_float(x: float): ...
def f_number(x: int | float): ...
def f_bool(x: bool): ...
def f_uuid(x: uuid.UUID): ...
def f_date(x: date): ...
def f_datetime(x: datetime): ...
def f_list(x: list): ...
def f_list_any(x: list[Any]): ...
def f_typing_list(x: typing.List): ...  # noqa: UP006 (the old spelling still maps)
def f_list_str(x: list[str]): ...
def f_list_int(x: list[int]): ...
def f_list_float(x: list[float]): ...
def f_list_number(x: list[int | float]): ...
def f_list_uuid(x: list[uuid.UUID]): ...
def f_list_dict(x: list[dict]): ...
def f_list_dict_str(x: list[dict[str, int]]): ...
def f_dict(x: dict): ...
def f_dict_str(x: dict[str, list[int]]): ...
def f_typing_dict(x: typing.Dict[str, Any]): ...  # noqa: UP006
def f_any(x: Any): ...
def f_bare(x): ...
def f_literal_str(x: Literal["low", "high"]): ...
def f_literal_num(x: Literal[1, 2.5]): ...
def f_optional(x: Optional[str]): ...  # noqa: UP045 (the old spelling still maps)
def f_union_none(x: str | None): ...
def f_union_typing(x: Union[int, None]): ...  # noqa: UP007
def f_literal_none(x: Literal["a", None]): ...
def f_optional_literal(x: Literal["a", "b"] | None): ...


@pytest.mark.parametrize(
    ("func", "expected"),
    [
        (f_str, {"type": "string", "allow_nil": False, "max_bytes": 3000}),
        (f_int, {"type": "num", "allow_nil": False}),
        (f_float, {"type": "num", "allow_nil": False}),
        (f_number, {"type": "num", "allow_nil": False}),
        (f_bool, {"type": "boolean", "allow_nil": False}),
        (f_uuid, {"type": "uuid", "allow_nil": False}),
        (f_date, {"type": "date", "allow_nil": False}),
        (f_datetime, {"type": "datetime", "allow_nil": False}),
        (f_list, {"type": "list", "allow_nil": False, "max_items": 1000, "max_item_bytes": 3000}),
        (f_list_any, {"type": "list", "allow_nil": False, "max_items": 1000, "max_item_bytes": 3000}),
        (f_typing_list, {"type": "list", "allow_nil": False, "max_items": 1000, "max_item_bytes": 3000}),
        (f_list_str, {"type": "list_string", "allow_nil": False, "max_items": 1000, "max_item_bytes": 3000}),
        (f_list_int, {"type": "list_num", "allow_nil": False, "max_items": 1000}),
        (f_list_float, {"type": "list_num", "allow_nil": False, "max_items": 1000}),
        (f_list_number, {"type": "list_num", "allow_nil": False, "max_items": 1000}),
        (f_list_uuid, {"type": "list_uuid", "allow_nil": False, "max_items": 1000}),
        (f_list_dict, {"type": "list_map", "allow_nil": False, "max_items": 1000}),
        (f_list_dict_str, {"type": "list_map", "allow_nil": False, "max_items": 1000}),
        (f_dict, {"type": "map", "allow_nil": False}),
        (f_dict_str, {"type": "map", "allow_nil": False}),
        (f_typing_dict, {"type": "map", "allow_nil": False}),
        (f_any, {"type": "any", "allow_nil": False}),
        (f_bare, {"type": "any", "allow_nil": False}),
        (f_literal_str, {"type": "string", "allow_nil": False, "max_bytes": 3000, "enum": ["low", "high"]}),
        (f_literal_num, {"type": "num", "allow_nil": False, "enum": [1, 2.5]}),
        (f_optional, {"type": "string", "allow_nil": True, "max_bytes": 3000}),
        (f_union_none, {"type": "string", "allow_nil": True, "max_bytes": 3000}),
        (f_union_typing, {"type": "num", "allow_nil": True}),
        (f_literal_none, {"type": "string", "allow_nil": True, "max_bytes": 3000, "enum": ["a"]}),
        (f_optional_literal, {"type": "string", "allow_nil": True, "max_bytes": 3000, "enum": ["a", "b"]}),
    ],
    ids=lambda value: value.__name__[2:] if callable(value) else "",
)
def test_each_annotation_maps_to_its_type(func, expected):
    assert arg_types_of(func) == {"x": expected}


def test_real_annotation_objects_map_too():
    def f(a, b, c): ...
    f.__annotations__ = {"a": list[uuid.UUID], "b": Annotated[str, MaxBytes(8)], "c": Optional[date]}  # noqa: UP045
    assert arg_types_of(f) == {
        "a": {"type": "list_uuid", "allow_nil": False, "max_items": 1000},
        "b": {"type": "string", "allow_nil": False, "max_bytes": 8},
        "c": {"type": "date", "allow_nil": True},
    }


# ------------------------------------------------------------------------ constraints


def f_constrained(
    name: Annotated[str, MaxBytes(200)],
    tags: Annotated[list[str], MaxItems(5), MaxItemBytes(16)],
    flat: Annotated[list, MaxItems(3)],
    ids: Annotated[list[uuid.UUID], MaxItems(2)],
    meta: Annotated[dict[str, str], MaxItems(4)],
    note: Annotated[str | None, MaxBytes(10)] = None,
    level: Optional[Annotated[Literal["a", "bb"], MaxBytes(2), "a doc string for someone else"]] = "a",  # noqa: UP045
): ...


def test_annotated_constraints():
    assert arg_types_of(f_constrained) == {
        "name": {"type": "string", "allow_nil": False, "max_bytes": 200},
        "tags": {"type": "list_string", "allow_nil": False, "max_items": 5, "max_item_bytes": 16},
        "flat": {"type": "list", "allow_nil": False, "max_items": 3, "max_item_bytes": 3000},
        "ids": {"type": "list_uuid", "allow_nil": False, "max_items": 2},
        "meta": {"type": "map", "allow_nil": False, "max_items": 4, "required": [], "accept": []},
        "note": {"type": "string", "allow_nil": True, "max_bytes": 10},
        "level": {"type": "string", "allow_nil": True, "max_bytes": 2, "enum": ["a", "bb"], "default_value": "a"},
    }


def test_constraints_are_enforced_like_explicit_options():
    config = register(f_constrained)
    base = {"name": "n", "tags": [], "flat": [], "ids": [], "meta": {}}
    validate_args(config.arg_types, base)
    with pytest.raises(ArgumentError, match='"tags" has too many items: max 5'):
        validate_args(config.arg_types, {**base, "tags": list("abcdef")})
    with pytest.raises(ArgumentError, match=r'"tags\[0\]" is too long: max 16 bytes'):
        validate_args(config.arg_types, {**base, "tags": ["x" * 17]})
    with pytest.raises(ArgumentError, match='"meta.k" must be a string, number, boolean or flat list'):
        validate_args(config.arg_types, {**base, "meta": {"k": {}}})


def f_bytes_on_int(x: Annotated[int, MaxBytes(3)]): ...
def f_items_on_str(x: Annotated[str, MaxItems(3)]): ...
def f_item_bytes_on_nums(x: Annotated[list[int], MaxItemBytes(3)]): ...


@pytest.mark.parametrize(
    ("func", "message"),
    [
        (f_bytes_on_int, "MaxBytes does not apply to int (argument type num)"),
        (f_items_on_str, "MaxItems does not apply to str (argument type string)"),
        (f_item_bytes_on_nums, "MaxItemBytes does not apply to list[int] (argument type list_num)"),
    ],
)
def test_misplaced_constraints_fail_naming_the_parameter(func, message):
    with pytest.raises(FunConfigError) as info:
        register(func)
    assert str(info.value) == f"svc.{func.__name__}: parameter 'x': {message}"


def f_bad_limit(x: Annotated[str, MaxBytes(0)]): ...


def test_bad_limit_values_are_checked_by_the_schema():
    with pytest.raises(FunConfigError, match='argument "x": max_bytes must be a positive integer, got 0'):
        register(f_bad_limit)


# --------------------------------------------------------------------------- defaults


def f_defaults(a: int = 3, b: str = "hi", c: list[str] = ["x"], d: dict = {"k": [1]}, e: bool = False,  # noqa: B006
               f: float = 0.5, g: Any = None, h: str | None = None, i: str = None): ...  # noqa: RUF013


def test_defaults_become_default_values_and_none_allows_null():
    types = arg_types_of(f_defaults)
    assert {name: entry.get("default_value") for name, entry in types.items()} == {
        "a": 3, "b": "hi", "c": ["x"], "d": {"k": [1]}, "e": False, "f": 0.5, "g": None, "h": None, "i": None}
    assert [name for name, entry in types.items() if "default_value" in entry] == ["a", "b", "c", "d", "e", "f"]
    assert [name for name, entry in types.items() if entry["allow_nil"]] == ["g", "h", "i"]
    config = register(f_defaults)
    assert validate_args(config.arg_types, {}) == {
        "a": 3, "b": "hi", "c": ["x"], "d": {"k": [1]}, "e": False, "f": 0.5, "g": None, "h": None, "i": None}


def f_tuple_default(x: list = (1, 2)): ...
def f_uuid_default(x: uuid.UUID = uuid.UUID(U)): ...  # noqa: B008
def f_nan_default(x: float = float("nan")): ...
def f_wrong_default(x: int = "three"): ...


@pytest.mark.parametrize("func", [f_tuple_default, f_uuid_default, f_nan_default])
def test_defaults_must_be_json(func):
    with pytest.raises(FunConfigError) as info:
        register(func)
    assert str(info.value).startswith(f"svc.{func.__name__}: parameter 'x': default ")
    assert "is not a JSON value" in str(info.value)


def test_a_default_of_the_wrong_type_fails_naming_the_argument():
    with pytest.raises(FunConfigError, match='argument "x": default_value is invalid: "x" must be a number'):
        register(f_wrong_default)


# ----------------------------------------------------------------------------- errors


def f_varargs(a: int, *rest: int): ...
def f_kwargs(a: int, **options: Any): ...
def f_positional_only(a: int, /, b: int): ...
def f_keyword_only(a: int, *, b: int = 1): ...
def f_set(x: set[str]): ...
def f_tuple(x: tuple[int, int]): ...
def f_list_bool(x: list[bool]): ...
def f_list_list(x: list[list[int]]): ...
def f_dict_int_keys(x: dict[int, str]): ...
def f_union(x: str | int): ...
def f_literal_bool(x: Literal[True, False]): ...
def f_literal_mixed(x: Literal["a", 1]): ...
def f_object(x: object): ...
def f_none(x: None): ...
def f_unknown_name(x: NoSuchType): ...  # noqa: F821 (evaluated, and failing, at decoration)
def f_syntax(x: "list["): ...  # noqa: F722


@pytest.mark.parametrize(
    ("func", "param", "message"),
    [
        (f_varargs, "rest", "*args and **kwargs cannot be declared from type hints"),
        (f_kwargs, "options", "*args and **kwargs cannot be declared from type hints"),
        (f_positional_only, "a", "positional-only parameters cannot be arguments"),
        (f_keyword_only, "b", "keyword-only parameters cannot be arguments"),
        (f_set, "x", "type hint set[str] cannot be mapped to an argument type"),
        (f_tuple, "x", "type hint tuple[int, int] cannot be mapped"),
        (f_list_bool, "x", "list[bool] cannot be mapped: use list, list[str]"),
        (f_list_list, "x", "list[list[int]] cannot be mapped"),
        (f_dict_int_keys, "x", "dict[int, str] cannot be mapped: JSON object keys are strings"),
        (f_union, "x", "cannot be mapped to an argument type"),
        (f_literal_bool, "x", "a Literal lists strings only or numbers only"),
        (f_literal_mixed, "x", "a Literal lists strings only or numbers only"),
        (f_object, "x", "type hint object cannot be mapped"),
        (f_none, "x", "type hint NoneType cannot be mapped"),
        (f_unknown_name, "x", "cannot evaluate the type hint 'NoSuchType' (NameError"),
        (f_syntax, "x", "cannot evaluate the type hint"),
    ],
)
def test_unmappable_parameters_fail_at_import_naming_function_and_parameter(func, param, message):
    with pytest.raises(FunConfigError) as info:
        register(func)
    text = str(info.value)
    assert text.startswith(f"svc.{func.__name__}: parameter {param!r}: "), text
    assert message in text


def test_the_error_names_the_request_type_given():
    with pytest.raises(FunConfigError, match=r"^svc\.renamed: parameter 'x': "):
        register(f_set, request_type="renamed")


# -------------------------------------------------------------- request_info, orders, none


def f_info(a: int, b: str = "x", request_info=None): ...


def test_request_info_is_skipped_only_when_asked_for():
    config = register(f_info, request_info=True)
    assert list(config.arg_types) == ["a", "b"]
    assert list(register(f_info).arg_types) == ["a", "b", "request_info"]


def f_order(zeta: str, alpha: int, mid: bool): ...


def test_arg_orders_follow_the_parameters():
    config = register(f_order)
    assert config.arg_orders == ("zeta", "alpha", "mid")
    assert call_arguments(config, {"zeta": "z", "alpha": 1, "mid": True}) == ["z", 1, True]


def test_explicit_arg_orders_map_with_hints():
    def f(args): ...
    config = register(f, arg_orders="map")
    assert list(config.arg_types) == ["args"]
    assert config.arg_orders == "map"


def f_nothing(): ...
def f_only_info(request_info): ...


def test_no_parameters_means_no_arguments():
    config = register(f_nothing)
    assert config.arg_types == {}
    assert config.arg_orders == ()
    assert validate_args(config.arg_types, {"stray": 1}) == {}  # ignored, as before
    assert register(f_only_info, request_info=True).arg_types == {}


def test_explicit_arg_types_win_with_no_derivation_at_all():
    config = register(f_set, arg_types={"x": "list_string"})
    assert config.arg_types["x"].type == "list_string"
    assert config.arg_types["x"].native is False
    assert register(f_kwargs, arg_types={"a": "num"}).arg_orders == ("a",)
    assert register(f_defaults, arg_types={}).arg_types == {}


def test_derive_directly():
    assert derive(f_info, "svc.f", request_info=True) == {
        "a": {"type": "num"}, "b": {"type": "string", "default_value": "x"}}


# ------------------------------------------------------------- values the function gets


def f_objects(u: uuid.UUID, us: list[uuid.UUID], d: date, t: datetime, n: uuid.UUID | None = None): ...


def test_hinted_functions_get_python_objects():
    config = register(f_objects)
    args = validate_args(config.arg_types, {"u": f"URN:UUID:{U.upper()}", "us": [f"{{{U}}}", U.replace("-", "")],
                                            "d": "2024-02-29", "t": "2024-05-01T12:00:00Z"})
    assert call_arguments(config, args) == [
        uuid.UUID(U), [uuid.UUID(U), uuid.UUID(U)], date(2024, 2, 29), datetime(2024, 5, 1, 12, tzinfo=UTC), None]


def test_explicit_uuid_arguments_stay_strings_and_dates_become_dates():
    def f(u, d): ...
    config = register(f, arg_types={"u": "uuid", "d": "date"})
    assert call_arguments(config, {"u": f"{{{U}}}", "d": "2024-05-01"}) == [f"{{{U}}}", date(2024, 5, 1)]


def test_native_conversion_stays_in_the_worker():
    config = register(f_objects)
    assert "native" not in str(config.to_json())
    spec = config.arg_types["u"]
    assert spec.native is True
    assert dataclasses.replace(spec, native=False) == spec  # equality ignores the flag


# -------------------------------------------------------------------- hinted vs explicit


def hinted(s: Annotated[str, MaxBytes(5)], n: int, level: Literal["lo", "hi"], when: datetime,
           ids: list[uuid.UUID], tags: list[str] | None = None, count: float = 1): ...


def explicit(s, n, level, when, ids, tags, count): ...


EXPLICIT = {"s": {"type": "string", "max_bytes": 5}, "n": "num", "level": {"type": "string", "enum": ["lo", "hi"]},
            "when": "datetime", "ids": "list_uuid", "tags": {"type": "list_string", "allow_nil": True},
            "count": {"type": "num", "default_value": 1}}


@pytest.mark.parametrize(
    "args",
    [
        {"s": "abc", "n": 1, "level": "lo", "when": "2024-05-01T00:00Z", "ids": [U]},
        {"s": "abcdef", "n": 1, "level": "lo", "when": "2024-05-01T00:00Z", "ids": [U]},
        {"s": "abc", "n": True, "level": "lo", "when": "2024-05-01T00:00Z", "ids": [U]},
        {"s": "abc", "n": 1, "level": "mid", "when": "2024-05-01T00:00Z", "ids": [U]},
        {"s": "abc", "n": 1, "level": "lo", "when": "2024-05-01T00:00", "ids": [U]},
        {"s": "abc", "n": 1, "level": "lo", "when": "2024-05-01T00:00Z", "ids": ["nope"]},
        {"s": "abc", "n": 1, "level": "lo", "when": "2024-05-01T00:00Z", "ids": [U], "tags": [1]},
        {"s": "abc", "n": 1, "level": "lo", "when": "2024-05-01T00:00Z", "ids": [U], "count": None},
        {"s": "abc", "n": 1, "level": "lo", "when": "2024-05-01T00:00Z", "ids": [U], "extra": 1},
        {"n": 1, "level": "lo", "when": "2024-05-01T00:00Z", "ids": [U]},
    ],
)
def test_hinted_twin_validates_like_its_explicit_twin(args):
    ours, theirs = register(hinted), register(explicit, arg_types=EXPLICIT)
    assert ours.args_schema == theirs.args_schema

    def outcome(config):
        try:
            return validate_args(config.arg_types, args)
        except ArgumentError as exc:
            return str(exc)

    assert outcome(ours) == outcome(theirs)


# ------------------------------------------------------------------------ descriptions


def documented(a: int):
    """Add one to a number.

    The rest of the docstring is not part of the description.
    """


def documented_multiline():
    """Fetch a user
    by id, politely.
    \t
    More."""


def test_description_is_the_docstrings_first_paragraph():
    assert register(documented).description == "Add one to a number."
    assert register(documented_multiline).description == "Fetch a user by id, politely."
    assert register(f_nothing).description is None
    assert register(documented, description="Mine.").description == "Mine."
    assert register(documented, description=None).description is None


@pytest.mark.parametrize("doc", [None, "", "   \n  ", "One.", "  One\n  two.\n\n  Three."])
def test_first_paragraph(doc):
    expected = {None: None, "": None, "   \n  ": None, "One.": "One.", "  One\n  two.\n\n  Three.": "One two."}
    assert first_paragraph(doc) == expected[doc]


def test_description_round_trips_and_old_payloads_load():
    from workers.funconfig import load_funconfig

    config = register(documented)
    data = config.to_json()
    assert data["description"] == "Add one to a number."
    assert load_funconfig(data) == config
    del data["description"]
    assert load_funconfig(data).description is None
    assert "description" not in register(f_nothing).to_json()  # unchanged JSON (and hash) without one
    with pytest.raises(FunConfigError, match="description: description must be null or a string, got 5"):
        load_funconfig({**data, "description": 5})
