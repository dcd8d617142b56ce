"""Argument types: parsing the ``arg_types`` declaration and checking values against it.

Pure functions, no I/O. The gateway runs :func:`validate_args` before dispatch (so a bad
call never reaches a worker) and the FunConfig schema runs :func:`check_value` on every
``default_value`` at import time. The worker runs :func:`convert` to turn validated JSON
values into Python objects (``datetime``) before calling the function.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

STRING_MAX_BYTES = 3000
LIST_MAX_ITEMS = 1000
MAP_MAX_ITEMS = 1000

SCALAR_TYPES = ("string", "num", "boolean", "uuid", "datetime", "naive_datetime", "any")
LIST_TYPES = ("list", "list_string", "list_num", "list_uuid", "list_map")
TYPES = SCALAR_TYPES + LIST_TYPES + ("map",)

#: Which options each type accepts, besides ``type``, ``allow_nil`` and ``default_value``.
_OPTIONS = {
    "string": {"max_bytes"},
    "list": {"max_items", "max_item_bytes"},
    "list_string": {"max_items", "max_item_bytes"},
    "list_num": {"max_items"},
    "list_uuid": {"max_items"},
    "list_map": {"max_items"},
    "map": {"max_items", "required", "accept"},
}
_COMMON = {"type", "allow_nil", "allow_nil?", "default_value"}

_MISSING = object()

_UUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}", re.IGNORECASE
)


class ArgumentError(ValueError):
    """A value does not match its declared type; the message names the argument."""


class ArgSpecError(ValueError):
    """An ``arg_types`` entry is malformed."""


@dataclass(frozen=True)
class ArgSpec:
    """One declared argument, normalised from the simple or the extended form."""

    name: str
    type: str
    allow_nil: bool = False
    default: Any = _MISSING
    max_bytes: int = STRING_MAX_BYTES
    max_items: int | None = None
    max_item_bytes: int = STRING_MAX_BYTES
    required: tuple[str, ...] = ()
    accept: tuple[str, ...] = ()
    #: a map with any option is checked key by key (flat values only)
    strict_map: bool = False

    def __post_init__(self) -> None:
        if self.max_items is None and (self.type in LIST_TYPES or self.type == "map"):
            object.__setattr__(self, "max_items", MAP_MAX_ITEMS if self.type == "map" else LIST_MAX_ITEMS)

    @property
    def has_default(self) -> bool:
        return self.default is not _MISSING

    @property
    def item_limit(self) -> int:
        if self.max_items is not None:
            return self.max_items
        return MAP_MAX_ITEMS if self.type == "map" else LIST_MAX_ITEMS

    def to_json(self) -> dict:
        """The extended JSON form, with every default spelled out (used in listings)."""
        out: dict[str, Any] = {"type": self.type, "allow_nil": self.allow_nil}
        if self.has_default:
            out["default_value"] = self.default
        if self.type == "string":
            out["max_bytes"] = self.max_bytes
        if self.type in LIST_TYPES or (self.type == "map" and self.strict_map):
            out["max_items"] = self.item_limit
        if self.type in ("list", "list_string"):
            out["max_item_bytes"] = self.max_item_bytes
        if self.type == "map" and self.strict_map:
            out["required"] = list(self.required)
            out["accept"] = list(self.accept)
        return out


def _positive_int(name: str, option: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ArgSpecError(f'argument "{name}": {option} must be a positive integer, got {_show(value)}')
    return value


def _names(name: str, option: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise ArgSpecError(f'argument "{name}": {option} must be a list of key names, got {_show(value)}')
    return tuple(value)


def parse_spec(name: str, raw: Any) -> ArgSpec:
    """Normalise one ``arg_types`` entry (``"string"`` or ``{"type": "string", ...}``)."""
    if not isinstance(name, str) or not name:
        raise ArgSpecError(f"argument names must be non-empty strings, got {_show(name)}")
    if isinstance(raw, str):
        raw = {"type": raw}
    if not isinstance(raw, Mapping):
        raise ArgSpecError(f'argument "{name}": expected a type name or an object with "type", got {_show(raw)}')
    kind = raw.get("type")
    if kind not in TYPES:
        raise ArgSpecError(f'argument "{name}": unknown type {_show(kind)}; expected one of {", ".join(TYPES)}')
    allowed = _COMMON | _OPTIONS.get(kind, set())
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ArgSpecError(
            f'argument "{name}": option {", ".join(unknown)} does not apply to type {kind}'
            f" (allowed: {', '.join(sorted(allowed - {'allow_nil?'}))})"
        )
    allow_nil = raw.get("allow_nil", raw.get("allow_nil?", False))
    if not isinstance(allow_nil, bool):
        raise ArgSpecError(f'argument "{name}": allow_nil must be true or false, got {_show(allow_nil)}')
    fields: dict[str, Any] = {"name": name, "type": kind, "allow_nil": allow_nil}
    for option in ("max_bytes", "max_items", "max_item_bytes"):
        if option in raw:
            fields[option] = _positive_int(name, option, raw[option])
    for option in ("required", "accept"):
        if option in raw:
            fields[option] = _names(name, option, raw[option])
    if kind == "map":
        fields["strict_map"] = bool({"max_items", "required", "accept"} & set(raw))
        unreachable = sorted(set(fields.get("required", ())) - set(fields.get("accept", ()) or ()))
        if fields.get("accept") and unreachable:
            raise ArgSpecError(f'argument "{name}": required keys {", ".join(unreachable)} are not in accept')
    spec = ArgSpec(**fields)
    if "default_value" in raw and raw["default_value"] is not None:
        try:
            check_value(spec, raw["default_value"])
        except ArgumentError as exc:
            raise ArgSpecError(f'argument "{name}": default_value is invalid: {exc}') from None
        spec = ArgSpec(**{**fields, "default": raw["default_value"]})
    return spec


# --------------------------------------------------------------------------- values


def _show(value: Any, limit: int = 60) -> str:
    """A short JSON rendering of a client value for error messages."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except ValueError:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _expected(name: str, what: str, value: Any) -> ArgumentError:
    return ArgumentError(f'"{name}" must be {what}, got {_kind(value)} {_show(value)}')


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    text = value
    if text[:9].lower() == "urn:uuid:":
        text = text[9:]
    elif text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    return _UUID.fullmatch(text) is not None


def _check_bytes(name: str, text: str, limit: int, what: str = "") -> None:
    # a str never has more UTF-8 bytes than 4x its length; skip the encode for short ones
    if len(text) * 4 > limit:
        size = len(text.encode("utf-8"))
        if size > limit:
            raise ArgumentError(f'"{name}"{what} is too long: max {limit} bytes, got {size} bytes')


def _check_datetime(name: str, value: Any, aware: bool) -> None:
    what = "an ISO 8601 datetime with a UTC offset (e.g. 2024-05-01T12:00:00Z)" if aware else \
        "an ISO 8601 datetime without offset (e.g. 2024-05-01T12:00:00)"
    if not isinstance(value, str):
        raise _expected(name, what, value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _expected(name, what, value) from None
    if (parsed.tzinfo is not None) != aware:
        raise _expected(name, what, value)


def _check_size(spec: ArgSpec, value: list | dict) -> None:
    if len(value) > spec.item_limit:
        noun = "keys" if isinstance(value, dict) else "items"
        raise ArgumentError(f'"{spec.name}" has too many {noun}: max {spec.item_limit}, got {len(value)}')


def _check_list(spec: ArgSpec, value: Any) -> None:
    name, kind = spec.name, spec.type
    if not isinstance(value, list):
        raise _expected(name, "a list", value)
    _check_size(spec, value)
    for index, item in enumerate(value):
        where = f"{name}[{index}]"
        if kind == "list_string":
            if not isinstance(item, str):
                raise _expected(where, "a string", item)
            _check_bytes(where, item, spec.max_item_bytes)
        elif kind == "list_num":
            if not _is_number(item):
                raise _expected(where, "a number", item)
        elif kind == "list_uuid":
            if not _is_uuid(item):
                raise _expected(where, "a UUID string", item)
        elif kind == "list_map":
            if not isinstance(item, dict):
                raise _expected(where, "an object", item)
        else:  # list: flat scalars
            if isinstance(item, str):
                _check_bytes(where, item, spec.max_item_bytes)
            elif not (_is_number(item) or isinstance(item, bool)):
                raise _expected(where, "a string, number or boolean (nested values are not supported)", item)


def _check_map(spec: ArgSpec, value: Any) -> None:
    name = spec.name
    if not isinstance(value, dict):
        raise _expected(name, "an object", value)
    _check_size(spec, value)
    if not spec.strict_map:
        return
    missing = [key for key in spec.required if key not in value]
    if missing:
        raise ArgumentError(f'"{name}" is missing required keys: {", ".join(missing)}')
    if spec.accept:
        rejected = sorted(key for key in value if key not in spec.accept)
        if rejected:
            raise ArgumentError(f'"{name}" has keys that are not accepted: {", ".join(rejected)}')
    for key, item in value.items():
        where = f"{name}.{key}"
        if isinstance(item, str):
            _check_bytes(where, item, STRING_MAX_BYTES)
        elif isinstance(item, list):
            if len(item) > LIST_MAX_ITEMS:
                raise ArgumentError(f'"{where}" has too many items: max {LIST_MAX_ITEMS}, got {len(item)}')
            for index, element in enumerate(item):
                if not (isinstance(element, (str, bool)) or _is_number(element)):
                    raise _expected(f"{where}[{index}]", "a string, number or boolean", element)
        elif not (_is_number(item) or isinstance(item, bool)):
            raise _expected(where, "a string, number, boolean or flat list (nested objects are not supported)", item)


def check_value(spec: ArgSpec, value: Any) -> None:
    """Raise :class:`ArgumentError` unless ``value`` (not null) fits ``spec``."""
    kind, name = spec.type, spec.name
    if kind == "any":
        return
    if kind == "string":
        if not isinstance(value, str):
            raise _expected(name, "a string", value)
        _check_bytes(name, value, spec.max_bytes)
    elif kind == "num":
        if not _is_number(value):
            raise _expected(name, "a number", value)
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise _expected(name, "true or false", value)
    elif kind == "uuid":
        if not _is_uuid(value):
            raise _expected(name, "a UUID string", value)
    elif kind == "datetime":
        _check_datetime(name, value, aware=True)
    elif kind == "naive_datetime":
        _check_datetime(name, value, aware=False)
    elif kind == "map":
        _check_map(spec, value)
    else:
        _check_list(spec, value)


def validate_args(specs: Mapping[str, ArgSpec], args: Mapping[str, Any]) -> dict:
    """Check a call's arguments; return every declared argument with defaults filled in.

    Absent and no default: an error unless ``allow_nil`` (then ``None``). Present ``null``:
    allowed only with ``allow_nil``, and the default is not applied. Undeclared keys are
    rejected, except by a function that declares no arguments at all: it ignores whatever
    it is sent (reference §2.3). Raises :class:`ArgumentError` with the first problem found.
    """
    if not specs:
        return {}
    extra = [key for key in args if key not in specs]
    if extra:
        expected = ", ".join(f'"{k}"' for k in specs) or "none"
        raise ArgumentError(
            f"unknown argument{'s' if len(extra) > 1 else ''} "
            f"{', '.join(_show(k) for k in sorted(extra))} (expected: {expected})"
        )
    out = {}
    for name, spec in specs.items():
        value = args.get(name, _MISSING)
        if value is _MISSING:
            if spec.has_default:
                out[name] = spec.default
                continue
            if not spec.allow_nil:
                raise ArgumentError(f'missing argument "{name}"')
            out[name] = None
            continue
        if value is None:
            if not spec.allow_nil:
                raise ArgumentError(f'"{name}" must not be null')
            out[name] = None
            continue
        check_value(spec, value)
        out[name] = value
    return out


def convert(spec: ArgSpec, value: Any) -> Any:
    """Turn a validated JSON value into the Python object the function receives."""
    if value is not None and spec.type in ("datetime", "naive_datetime"):
        return datetime.fromisoformat(value)
    return value
