"""gateway_app.permissions: the ``{"arg": name}`` lookup of a ``"map"``-ordered function
(``arg_value``), and the edge cases of the other modes around it."""

from __future__ import annotations

import pytest

from gateway_app.auth import Identity
from gateway_app.permissions import allowed, arg_value
from workers.funconfig import FunConfig

ALICE = Identity("alice", ("user",))


def cfg(check_permission=None, arg_orders="map"):
    return FunConfig(service="svc", request_type="rt", arg_orders=arg_orders,
                     check_permission={"arg": "user_id"} if check_permission is None else check_permission)


# ------------------------------------------------------------------ arg_value


def test_top_level_truthy_value_wins_over_nested():
    args = {"user_id": "bob", "a": {"user_id": "alice"}}
    assert arg_value(args, "user_id", True) == "bob"
    assert allowed(cfg(), ALICE, args) is False


def test_top_level_match_allows():
    assert allowed(cfg(), ALICE, {"user_id": "alice", "a": {"user_id": "bob"}}) is True


def test_missing_top_level_falls_back_to_a_nested_object():
    args = {"profile": {"user_id": "alice"}}
    assert arg_value(args, "user_id", True) == "alice"
    assert allowed(cfg(), ALICE, args) is True


@pytest.mark.parametrize("falsy", ["", None, 0, False, {}, []])
def test_falsy_top_level_falls_back_to_a_nested_object(falsy):
    args = {"user_id": falsy, "profile": {"user_id": "alice"}}
    assert arg_value(args, "user_id", True) == "alice"
    assert allowed(cfg(), ALICE, args) is True


def test_nested_objects_are_searched_in_sorted_key_order():
    # insertion order puts "second" first; sorted order puts "first" first
    args = {"second": {"user_id": "alice"}, "first": {"user_id": "bob"}}
    assert arg_value(args, "user_id", True) == "bob"
    assert allowed(cfg(), ALICE, args) is False


def test_first_object_in_sorted_order_that_matches_allows():
    args = {"second": {"user_id": "bob"}, "first": {"user_id": "alice"}}
    assert arg_value(args, "user_id", True) == "alice"
    assert allowed(cfg(), ALICE, args) is True


def test_first_holding_object_decides_even_when_it_mismatches():
    args = {"a": {"user_id": None}, "b": {"user_id": "alice"}}
    assert arg_value(args, "user_id", True) is None
    assert allowed(cfg(), ALICE, args) is False


def test_objects_without_the_key_are_skipped():
    args = {"a": {"other": "alice"}, "b": {"user_id": "alice"}}
    assert arg_value(args, "user_id", True) == "alice"
    assert allowed(cfg(), ALICE, args) is True


def test_values_that_are_not_objects_are_skipped():
    args = {"a": ["user_id"], "b": "user_id", "c": 5, "d": {"user_id": "alice"}}
    assert arg_value(args, "user_id", True) == "alice"


def test_deeper_nesting_is_not_searched():
    args = {"a": {"b": {"user_id": "alice"}}}
    assert arg_value(args, "user_id", True) is None
    assert allowed(cfg(), ALICE, args) is False


def test_nothing_found_gives_the_top_level_value():
    assert arg_value({"user_id": ""}, "user_id", True) == ""
    assert arg_value({}, "user_id", True) is None
    assert arg_value({"a": {"x": 1}}, "user_id", True) is None


@pytest.mark.parametrize("orders", [("user_id", "profile"), ("profile",), ()])
def test_non_map_orders_never_search_nested(orders):
    args = {"profile": {"user_id": "alice"}}
    assert arg_value(args, "user_id", False) is None
    assert arg_value({"user_id": "", **args}, "user_id", False) == ""
    assert allowed(cfg(arg_orders=orders), ALICE, args) is False
    assert allowed(cfg(arg_orders=orders), ALICE, {"user_id": "", **args}) is False


def test_non_map_orders_use_the_top_level_value():
    assert allowed(cfg(arg_orders=("user_id",)), ALICE, {"user_id": "alice"}) is True


# ------------------------------------------------------------------ strictness


def test_top_level_comparison_is_strict():
    assert allowed(cfg(), Identity("123"), {"user_id": 123}) is False
    assert allowed(cfg(), Identity("123"), {"user_id": "123"}) is True


def test_nested_comparison_is_strict():
    assert allowed(cfg(), Identity("123"), {"p": {"user_id": 123}}) is False
    assert allowed(cfg(), Identity("123"), {"p": {"user_id": "123"}}) is True


def test_comparison_is_case_sensitive():
    assert allowed(cfg(), ALICE, {"p": {"user_id": "Alice"}}) is False


@pytest.mark.parametrize("args", [{"user_id": ""}, {"p": {"user_id": ""}}, {}])
def test_empty_user_id_denied(args):
    assert allowed(cfg(), Identity(""), args) is False


def test_empty_user_id_denied_in_every_mode():
    for mode in ("any_authenticated", {"role": ["user"]}, {"arg": "user_id"}):
        assert allowed(cfg(mode), Identity("", ("user",)), {"user_id": ""}) is False


def test_role_mode_with_empty_list_denies():
    assert allowed(cfg({"role": []}), Identity("root", ("admin", "user")), {}) is False


def test_role_mode_needs_a_shared_role():
    assert allowed(cfg({"role": ["admin", "user"]}), ALICE, {}) is True
    assert allowed(cfg({"role": ["admin"]}), ALICE, {}) is False
