"""workers.runtime: building call arguments, describing exceptions, invoking functions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from workers.errors import GenApiError
from workers.funconfig import load_funconfig
from workers.genapi import Function
from workers.runtime import call_arguments, describe_exception, invoke


def config(**fields):
    return load_funconfig({"service": "svc", "request_type": "f", **fields})


class TestCallArguments:
    def test_no_arguments(self):
        assert call_arguments(config(), {}) == []

    def test_no_declared_arguments_ignores_args(self):
        assert call_arguments(config(), {"stray": 1}) == []

    def test_single_argument(self):
        assert call_arguments(config(arg_types={"a": "num"}), {"a": 5}) == [5]

    def test_positional_order_follows_arg_orders(self):
        cfg = config(arg_types={"a": "num", "b": "string", "c": "boolean"}, arg_orders=["c", "a", "b"])
        assert call_arguments(cfg, {"a": 1, "b": "x", "c": True}) == [True, 1, "x"]

    def test_absent_values_become_none(self):
        cfg = config(arg_types={"a": "num", "b": {"type": "num", "allow_nil": True}}, arg_orders=["a", "b"])
        assert call_arguments(cfg, {"a": 1}) == [1, None]

    def test_map_passes_one_object_with_every_declared_name(self):
        cfg = config(arg_types={"a": "num", "b": {"type": "string", "allow_nil": True}}, arg_orders="map")
        assert call_arguments(cfg, {"a": 1}) == [{"a": 1, "b": None}]
        assert call_arguments(cfg, {"a": 1, "b": "x"}) == [{"a": 1, "b": "x"}]

    def test_datetime_conversion_positional(self):
        cfg = config(arg_types={"at": "datetime", "local": "naive_datetime", "s": "string"},
                     arg_orders=["at", "local", "s"])
        at, local, s = call_arguments(cfg, {"at": "2024-05-01T12:00:00Z", "local": "2024-05-01T08:00:00",
                                            "s": "2024-05-01T12:00:00Z"})
        assert at == datetime(2024, 5, 1, 12, tzinfo=UTC)
        assert local == datetime(2024, 5, 1, 8) and local.tzinfo is None
        assert s == "2024-05-01T12:00:00Z"

    def test_datetime_conversion_in_map(self):
        cfg = config(arg_types={"at": {"type": "datetime", "allow_nil": True}}, arg_orders="map")
        assert call_arguments(cfg, {"at": "2024-01-02T03:04:05+00:00"}) == [
            {"at": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)}]
        assert call_arguments(cfg, {}) == [{"at": None}]


class TestDescribeException:
    def test_genapi_error_is_its_reason(self):
        assert describe_exception(GenApiError("user not found")) == "user not found"
        assert describe_exception(GenApiError({"code": 4})) == "{'code': 4}"
        assert describe_exception(GenApiError()) == "error"

    def test_other_exceptions_carry_their_type(self):
        assert describe_exception(ValueError("bad value")) == "ValueError: bad value"
        assert describe_exception(KeyError("k")) == "KeyError: 'k'"

    def test_exception_without_message(self):
        assert describe_exception(RuntimeError()) == "RuntimeError"
        assert describe_exception(ZeroDivisionError()) == "ZeroDivisionError"


def echo(*args, **kwargs):
    return {"args": list(args), "kwargs": kwargs}


class TestInvoke:
    def test_positional(self):
        fn = Function(config(arg_types={"a": "num", "b": "num"}, arg_orders=["b", "a"]), echo)
        assert invoke(fn, {"a": 1, "b": 2}, None) == {"args": [2, 1], "kwargs": {}}

    def test_request_info_not_passed_unless_configured(self):
        fn = Function(config(arg_types={"a": "num"}), echo)
        assert invoke(fn, {"a": 1}, {"user_id": "u"}) == {"args": [1], "kwargs": {}}

    def test_request_info_passed(self):
        fn = Function(config(arg_types={"a": "num"}, request_info=True), echo)
        info = {"request_id": "r1", "user_id": "u", "device_id": None, "roles": ["admin"]}
        assert invoke(fn, {"a": 1}, info) == {"args": [1], "kwargs": {"request_info": info}}

    def test_request_info_none_becomes_empty_dict(self):
        fn = Function(config(request_info=True), echo)
        assert invoke(fn, {}, None) == {"args": [], "kwargs": {"request_info": {}}}

    def test_map_with_conversion(self):
        fn = Function(config(arg_types={"at": "datetime"}, arg_orders="map"), echo)
        result = invoke(fn, {"at": "2024-05-01T00:00:00Z"}, None)
        assert result == {"args": [{"at": datetime(2024, 5, 1, tzinfo=UTC)}], "kwargs": {}}

    def test_exceptions_propagate(self):
        def fail():
            raise GenApiError("nope")

        with pytest.raises(GenApiError, match="nope"):
            invoke(Function(config(), fail), {}, None)
