"""FunConfig: one callable function's configuration, and its marshmallow schema.

The schema checks every field in the JSON shapes of PRODUCT.md (reference §2.1–§2.4) and is
used on both sides: by ``@api.function`` at import time, and by the gateway when it loads
configs from Redis. ``FunConfigSchema().load(data)`` returns a :class:`FunConfig`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validates_schema

from .allowlist import DENIED_SERVICES
from .argtypes import ArgSpec, ArgSpecError, parse_spec
from .errors import FunConfigError
from .protocol import task_name
from .schema import args_schema

RESPONSE_TYPES = ("sync", "async", "stream", "none")
NODE_MODES = ("any", "random", "hash", "round_robin", "first", "last")
TIMEOUT_MIN, TIMEOUT_MAX = 100, 300_000
CALLABLE_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


@dataclass(frozen=True)
class FunConfig:
    """The validated configuration of one ``(service, request_type, version)``."""

    service: str
    request_type: str
    version: str | None = None
    arg_types: dict[str, ArgSpec] = field(default_factory=dict)
    arg_orders: tuple[str, ...] | str = ()
    response_type: str = "sync"
    timeout: int | None = 5000  # milliseconds; None means "infinity"
    choose_node_mode: Any = "any"
    check_permission: Any = False
    permission_callback: str | None = None
    retry: Any = None
    before_execute: dict | None = None
    after_execute: dict | None = None
    hook_timeout: int = 5000
    request_info: bool = False
    disabled: bool = False
    #: declared arguments whose values Flower and the logs show as ``'***'``
    sensitive: tuple[str, ...] = ()
    #: what the function does, for the catalogue (the docstring's first paragraph by default)
    description: str | None = None

    @property
    def task_name(self) -> str:
        """The Celery task name, as Flower shows it: ``service.request_type@version``."""
        return task_name(self.service, self.request_type, self.version)

    @property
    def key(self) -> tuple[str, str, str | None]:
        return (self.service, self.request_type, self.version)

    @cached_property
    def args_schema(self) -> dict:
        """The JSON Schema of the request's ``args`` (:mod:`workers.schema`), built once per
        config. Shared by every listing: do not modify it."""
        return args_schema(self.arg_types)

    def to_json(self) -> dict:
        """The JSON form stored in Redis; ``FunConfigSchema().load`` reads it back.

        ``sensitive`` and ``description`` are written only when set: a function without them
        keeps the JSON (and the config version hash) it had before the fields existed, so
        gateways that do not know the fields still accept it."""
        data = {
            "service": self.service,
            "request_type": self.request_type,
            "version": self.version,
            "arg_types": {name: spec.to_json() for name, spec in self.arg_types.items()},
            "arg_orders": self.arg_orders if isinstance(self.arg_orders, str) else list(self.arg_orders),
            "response_type": self.response_type,
            "timeout": "infinity" if self.timeout is None else self.timeout,
            "choose_node_mode": self.choose_node_mode,
            "check_permission": self.check_permission,
            "permission_callback": self.permission_callback,
            "retry": self.retry,
            "before_execute": self.before_execute,
            "after_execute": self.after_execute,
            "hook_timeout": self.hook_timeout,
            "request_info": self.request_info,
            "disabled": self.disabled,
        }
        if self.sensitive:
            data["sensitive"] = list(self.sensitive)
        if self.description is not None:
            data["description"] = self.description
        return data


# ------------------------------------------------------------------- field checks


def _fail(message: str) -> None:
    raise ValidationError(message)


def _check_name(what: str):
    def check(value: Any) -> None:
        if not isinstance(value, str) or not NAME.fullmatch(value):
            _fail(f"{what} must be a non-empty name of letters, digits, '_', '.' or '-', got {value!r}")
    return check


def check_service_name(value: Any) -> None:
    _check_name("service")(value)
    if value in DENIED_SERVICES:
        _fail(f"service {value!r} is reserved (the gateway's built-in services and Celery's own tasks)")


def _check_version(value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip() or value == "0.0.0"):
        _fail(f"version must be a version string such as '1.0.0' (not empty, not '0.0.0'), got {value!r}")


def _check_timeout(value: Any) -> None:
    if value == "infinity":
        return
    if isinstance(value, bool) or not isinstance(value, int) or not TIMEOUT_MIN <= value <= TIMEOUT_MAX:
        _fail(f"timeout must be an integer number of milliseconds between {TIMEOUT_MIN} and {TIMEOUT_MAX}, "
              f"or 'infinity', got {value!r}")


def _check_response_type(value: Any) -> None:
    if value not in RESPONSE_TYPES:
        _fail(f"response_type must be one of {', '.join(RESPONSE_TYPES)}, got {value!r}")


def _single_key(value: Any, keys: tuple[str, ...]) -> tuple[str, Any] | None:
    if isinstance(value, dict) and len(value) == 1:
        (key, inner), = value.items()
        if key in keys:
            return key, inner
    return None


def _check_node_mode(value: Any) -> None:
    if value in NODE_MODES or (isinstance(value, str) and CALLABLE_PATH.fullmatch(value)):
        return
    pair = _single_key(value, ("hash", "sticky"))
    if pair and isinstance(pair[1], str) and pair[1]:
        return
    _fail("choose_node_mode must be 'any', 'random', 'hash', 'round_robin', 'first', 'last', {'hash': key}, "
          f"{{'sticky': key}} or a 'module:function' selector, got {value!r}")


def _check_permission(value: Any) -> None:
    if value is False or value == "any_authenticated":
        return
    pair = _single_key(value, ("arg", "role"))
    if pair:
        key, inner = pair
        if key == "arg" and isinstance(inner, str) and inner:
            return
        if key == "role" and isinstance(inner, list) and all(isinstance(r, str) and r for r in inner):
            return
    _fail("check_permission must be false, 'any_authenticated', {'arg': name} or {'role': [roles]}, "
          f"got {value!r}")


def _check_callable_path(what: str):
    def check(value: Any) -> None:
        if value is not None and not (isinstance(value, str) and CALLABLE_PATH.fullmatch(value)):
            _fail(f"{what} must be null, a callable or a 'module:function' string, got {value!r}")
    return check


def _check_hook(what: str):
    def check(value: Any) -> None:
        if value is None:
            return
        if (isinstance(value, dict) and set(value) <= {"callable", "args"}
                and isinstance(value.get("callable"), str) and CALLABLE_PATH.fullmatch(value["callable"])
                and isinstance(value.get("args", []), list)):
            return
        _fail(f"{what} must be null, a callable, a 'module:function' string or "
              f"{{'callable': 'module:function', 'args': [...]}}, got {value!r}")
    return check


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _check_retry(value: Any) -> None:
    if value is None or _positive(value):
        return
    pair = _single_key(value, ("same_node", "all_nodes"))
    if pair and _positive(pair[1]):
        return
    _fail(f"retry must be null, a positive number, {{'same_node': n}} or {{'all_nodes': n}}, got {value!r}")


def _check_positive_int(what: str):
    def check(value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            _fail(f"{what} must be a positive integer (milliseconds), got {value!r}")
    return check


def _check_sensitive(value: Any) -> None:
    if not isinstance(value, (list, tuple)) or not all(isinstance(name, str) and name for name in value):
        _fail(f"sensitive must be a list of argument names, got {value!r}")


def _check_description(value: Any) -> None:
    if value is not None and not isinstance(value, str):
        _fail(f"description must be null or a string, got {value!r}")


def _check_bool(what: str):
    def check(value: Any) -> None:
        if not isinstance(value, bool):
            _fail(f"{what} must be true or false, got {value!r}")
    return check


# ------------------------------------------------------------------------ schema


class FunConfigSchema(Schema):
    """Marshmallow schema of a FunConfig in its JSON shape; ``load`` returns a FunConfig."""

    class Meta:
        unknown = RAISE

    service = fields.Raw(required=True, validate=check_service_name)
    request_type = fields.Raw(required=True, validate=_check_name("request_type"))
    version = fields.Raw(load_default=None, allow_none=True, validate=_check_version)
    arg_types = fields.Raw(load_default=None, allow_none=True)
    arg_orders = fields.Raw(load_default=None, allow_none=True)
    response_type = fields.Raw(load_default="sync", validate=_check_response_type)
    timeout = fields.Raw(load_default=5000, validate=_check_timeout)
    choose_node_mode = fields.Raw(load_default="any", validate=_check_node_mode)
    check_permission = fields.Raw(load_default=False, validate=_check_permission)
    permission_callback = fields.Raw(load_default=None, allow_none=True,
                                     validate=_check_callable_path("permission_callback"))
    retry = fields.Raw(load_default=None, allow_none=True, validate=_check_retry)
    before_execute = fields.Raw(load_default=None, allow_none=True, validate=_check_hook("before_execute"))
    after_execute = fields.Raw(load_default=None, allow_none=True, validate=_check_hook("after_execute"))
    hook_timeout = fields.Raw(load_default=5000, validate=_check_positive_int("hook_timeout"))
    request_info = fields.Raw(load_default=False, validate=_check_bool("request_info"))
    disabled = fields.Raw(load_default=False, validate=_check_bool("disabled"))
    sensitive = fields.Raw(load_default=(), validate=_check_sensitive)
    description = fields.Raw(load_default=None, allow_none=True, validate=_check_description)

    @validates_schema(skip_on_field_errors=False)
    def _check_arguments(self, data: dict, **kwargs: Any) -> None:
        specs = _parse_arg_types(data.get("arg_types"))
        data["arg_types"] = specs
        data["arg_orders"] = _check_arg_orders(specs, data.get("arg_orders"))
        mode = data.get("check_permission")
        if isinstance(mode, dict) and "arg" in mode and not _arg_reachable(mode["arg"], specs, data["arg_orders"]):
            where = ("arg_types does not declare, and no map argument can hold"
                     if data["arg_orders"] == "map" else "arg_types does not declare")
            raise ValidationError(f"check_permission names argument {mode['arg']!r}, which {where}",
                                  "check_permission")
        data["sensitive"] = _check_sensitive_declared(specs, data.get("sensitive"))

    @post_load
    def _build(self, data: dict, **kwargs: Any) -> FunConfig:
        if data["timeout"] == "infinity":
            data["timeout"] = None
        return FunConfig(**data)


def _arg_reachable(name: str, specs: dict[str, ArgSpec], orders: Any) -> bool:
    """Can ``{"arg": name}`` find a value? A declared argument, or, for a ``"map"``-ordered
    function, a key inside one of its map arguments (reference §5.2 looks one level deep):
    a ``map`` argument whose ``accept`` list is empty or names the key, or an ``any`` one."""
    if name in specs:
        return True
    if orders != "map":
        return False
    return any(spec.type == "any" or (spec.type == "map" and (not spec.accept or name in spec.accept))
               for spec in specs.values())


def _parse_arg_types(raw: Any) -> dict[str, ArgSpec]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValidationError(f"arg_types must be an object mapping argument names to types, got {raw!r}",
                              "arg_types")
    try:
        return {name: parse_spec(name, spec) for name, spec in raw.items()}
    except ArgSpecError as exc:
        raise ValidationError(str(exc), "arg_types") from None


def _check_arg_orders(specs: dict[str, ArgSpec], orders: Any) -> tuple[str, ...] | str:
    """Reference §2.4's matrix, with one fix: ``[]`` is only accepted for one argument."""
    if orders == "map":
        if not specs:
            raise ValidationError("arg_orders 'map' needs arg_types to declare arguments", "arg_orders")
        return "map"
    if orders is None or orders == []:
        if len(specs) > 1:
            raise ValidationError(
                f"arg_orders must list the order of the {len(specs)} declared arguments "
                f"({', '.join(specs)}) or be 'map'", "arg_orders")
        return tuple(specs)
    if not isinstance(orders, (list, tuple)) or not all(isinstance(n, str) for n in orders):
        raise ValidationError(f"arg_orders must be a list of argument names or 'map', got {orders!r}",
                              "arg_orders")
    if len(orders) != len(specs) or set(orders) != set(specs):
        raise ValidationError(
            f"arg_orders {list(orders)!r} must name each declared argument exactly once "
            f"(declared: {', '.join(specs) or 'none'})", "arg_orders")
    return tuple(orders)


def _check_sensitive_declared(specs: dict[str, ArgSpec], names: Any) -> tuple[str, ...]:
    """Each sensitive name is a declared argument (a typo would otherwise show the value)."""
    if not isinstance(names, (list, tuple)):
        return ()  # the field check has already reported it
    for name in names:
        if name not in specs:
            raise ValidationError(f"sensitive names argument {name!r}, which arg_types does not declare "
                                  f"(declared: {', '.join(specs) or 'none'})", "sensitive")
    return tuple(dict.fromkeys(names))


_SCHEMA = FunConfigSchema()


def load_funconfig(data: dict) -> FunConfig:
    """Validate a FunConfig in its JSON shape; raise :class:`FunConfigError` naming the fields."""
    try:
        return _SCHEMA.load(data)
    except ValidationError as exc:
        where = f"{data.get('service')}.{data.get('request_type')}" if isinstance(data, dict) else "?"
        raise FunConfigError(f"invalid function config {where}: {format_errors(exc.messages)}") from None


def format_errors(messages: Any) -> str:
    """Flatten marshmallow's error dict into ``field: message; field: message``."""
    if isinstance(messages, dict):
        parts = []
        for key, value in messages.items():
            text = format_errors(value)
            if key == "_schema":
                parts.append(text)
            else:
                parts.append(f"{key}: {'unknown field' if text == 'Unknown field.' else text}")
        return "; ".join(parts)
    if isinstance(messages, list):
        return "; ".join(format_errors(m) for m in messages)
    return str(messages)
