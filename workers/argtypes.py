"""Argument types: parsing the ``arg_types`` declaration and checking values against it.

Pure functions, no I/O. The gateway runs :func:`validate_args` before dispatch (so a bad
call never reaches a worker) and the FunConfig schema runs :func:`check_value` on every
``default_value`` at import time. The worker runs :func:`convert` to turn validated JSON
values into Python objects (``datetime``, ``date``) before calling the function.

The textual types (``uuid``, ``date``, ``datetime``, ``naive_datetime``) are checked with the
regular expressions below, which :mod:`workers.schema` also publishes as JSON Schema
``pattern``: they are written to mean the same in Python's ``re`` and in ECMAScript (ASCII
classes only, ``$(?!\\n)`` so that Python's ``$`` does not match before a final newline), and
they encode the calendar (month lengths, leap years, no year 0), so a client that checks the
pattern accepts exactly what the gateway accepts.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

STRING_MAX_BYTES = 3000
LIST_MAX_ITEMS = 1000
MAP_MAX_ITEMS = 1000

SCALAR_TYPES = ("string", "num", "boolean", "uuid", "datetime", "naive_datetime", "date", "any")
LIST_TYPES = ("list", "list_string", "list_num", "list_uuid", "list_map")
TYPES = SCALAR_TYPES + LIST_TYPES + ("map",)

#: Which options each type accepts, besides ``type``, ``allow_nil`` and ``default_value``.
_OPTIONS = {
    "string": {"max_bytes", "enum"},
    "num": {"enum"},
    "list": {"max_items", "max_item_bytes"},
    "list_string": {"max_items", "max_item_bytes"},
    "list_num": {"max_items"},
    "list_uuid": {"max_items"},
    "list_map": {"max_items"},
    "map": {"max_items", "required", "accept"},
}
_COMMON = {"type", "allow_nil", "allow_nil?", "default_value"}

_MISSING = object()



def _anchored(body: str) -> str:
    """The whole string must match, in Python (``re.search``) and ECMAScript alike."""
    return f"^(?:{body})$(?!\\n)"


_HEX_UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32}"
#: 8-4-4-4-12 or 32 hex digits, any case, optionally in braces or after ``urn:uuid:`` (any case)
UUID_PATTERN = _anchored(f"[uU][rR][nN]:[uU][uU][iI][dD]:(?:{_HEX_UUID})|\\{{(?:{_HEX_UUID})\\}}|{_HEX_UUID}")

_MONTH_DAY = ("(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
              "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
              "|02-(?:0[1-9]|1[0-9]|2[0-8])")
_LEAP_YEAR = "[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[048]|[2468][048]|[13579][26])00"
#: a calendar date ``YYYY-MM-DD`` from 0001-01-01 to 9999-12-31 (29 February in leap years only)
_DATE = f"(?!0000)(?:[0-9]{{4}}-(?:{_MONTH_DAY})|(?:{_LEAP_YEAR})-02-29)"
_TIME = "(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\\.[0-9]{1,6})?)?"
_OFFSET = "Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9]"
DATE_PATTERN = _anchored(_DATE)
#: ``YYYY-MM-DD`` ``T`` or space ``HH:MM[:SS[.ffffff]]`` then ``Z`` or ``±HH:MM``
DATETIME_PATTERN = _anchored(f"{_DATE}[T ]{_TIME}(?:{_OFFSET})")
#: the same without an offset; a date alone means midnight
NAIVE_DATETIME_PATTERN = _anchored(f"{_DATE}(?:[T ]{_TIME})?")

_UUID = re.compile(UUID_PATTERN)
_DATE_RE = re.compile(DATE_PATTERN)
_DATETIME = {True: re.compile(DATETIME_PATTERN), False: re.compile(NAIVE_DATETIME_PATTERN)}


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
    #: the allowed values of a ``string`` or ``num`` argument (``None``: any)
    enum: tuple[Any, ...] | None = None
    #: derived from a type hint: the worker passes ``uuid.UUID`` objects for ``uuid`` and
    #: ``list_uuid`` (explicit ``arg_types`` keep strings). Local to the worker, never serialised.
    native: bool = field(default=False, compare=False)

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
        if self.enum is not None:
            out["enum"] = list(self.enum)
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
        raise ArgSpecError(f'argument "{name}": {option} must be a positive integer, got {show_value(value)}')
    return value


def _names(name: str, option: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise ArgSpecError(f'argument "{name}": {option} must be a list of key names, got {show_value(value)}')
    return tuple(value)


def _enum(spec: ArgSpec, value: Any) -> tuple[Any, ...]:
    """A non-empty list of distinct strings (``string``, each within ``max_bytes``) or finite
    numbers (``num``)."""
    name, strings = spec.name, spec.type == "string"
    fits = (lambda v: isinstance(v, str)) if strings else (lambda v: _is_number(v) and math.isfinite(v))
    if not isinstance(value, (list, tuple)) or not value or not all(fits(v) for v in value):
        what = "strings" if strings else "numbers"
        raise ArgSpecError(f'argument "{name}": enum must be a non-empty list of {what}, got {show_value(value)}')
    if len(set(value)) != len(value):
        raise ArgSpecError(f'argument "{name}": enum lists a value twice: {show_value(value)}')
    for item in value if strings else ():
        if utf8_size(item) > spec.max_bytes:
            raise ArgSpecError(f'argument "{name}": enum value {show_value(item)} is longer than max_bytes '
                               f"({utf8_size(item)} > {spec.max_bytes} bytes)")
    return tuple(value)


def parse_spec(name: str, raw: Any) -> ArgSpec:
    """Normalise one ``arg_types`` entry (``"string"`` or ``{"type": "string", ...}``)."""
    if not isinstance(name, str) or not name:
        raise ArgSpecError(f"argument names must be non-empty strings, got {show_value(name)}")
    if isinstance(raw, str):
        raw = {"type": raw}
    if not isinstance(raw, Mapping):
        raise ArgSpecError(f'argument "{name}": expected a type name or an object with "type", got {show_value(raw)}')
    kind = raw.get("type")
    if kind not in TYPES:
        raise ArgSpecError(f'argument "{name}": unknown type {show_value(kind)}; expected one of {", ".join(TYPES)}')
    allowed = _COMMON | _OPTIONS.get(kind, set())
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ArgSpecError(
            f'argument "{name}": option {", ".join(unknown)} does not apply to type {kind}'
            f" (allowed: {', '.join(sorted(allowed - {'allow_nil?'}))})"
        )
    allow_nil = raw.get("allow_nil", raw.get("allow_nil?", False))
    if not isinstance(allow_nil, bool):
        raise ArgSpecError(f'argument "{name}": allow_nil must be true or false, got {show_value(allow_nil)}')
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
    if "enum" in raw:
        fields["enum"] = _enum(ArgSpec(**fields), raw["enum"])
    spec = ArgSpec(**fields)
    if "default_value" in raw and raw["default_value"] is not None:
        try:
            check_value(spec, raw["default_value"])
        except ArgumentError as exc:
            raise ArgSpecError(f'argument "{name}": default_value is invalid: {exc}') from None
        spec = ArgSpec(**{**fields, "default": raw["default_value"]})
    return spec


# --------------------------------------------------------------------------- values


def show_value(value: Any, limit: int = 60) -> str:
    """A short JSON rendering of a client value for error messages (the gateway's and the
    Python client's)."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except ValueError:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def kind_of(value: Any) -> str:
    """What a value is, in the words of error messages (``string``, ``list``, ``object``…)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):  # a tuple: only from a Python caller (the client)
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _expected(name: str, what: str, value: Any) -> ArgumentError:
    return ArgumentError(f'"{name}" must be {what}, got {kind_of(value)} {show_value(value)}')


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_uuid(value: Any) -> bool:
    return isinstance(value, str) and _UUID.match(value) is not None


def utf8_size(text: str) -> int:
    """The UTF-8 length of ``text`` in bytes (a lone surrogate from a JSON escape counts 3)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _check_bytes(name: str, text: str, limit: int, what: str = "") -> None:
    # a str never has more UTF-8 bytes than 4x its length; skip the encode for short ones
    if len(text) * 4 > limit:
        size = utf8_size(text)
        if size > limit:
            raise ArgumentError(f'"{name}"{what} is too long: max {limit} bytes, got {size} bytes')


def _check_datetime(name: str, value: Any, aware: bool) -> None:
    what = "an ISO 8601 datetime with a UTC offset (e.g. 2024-05-01T12:00:00Z)" if aware else \
        "an ISO 8601 datetime without offset (e.g. 2024-05-01T12:00:00)"
    # the pattern first: fromisoformat alone also takes week dates, compact forms, any separator
    if not isinstance(value, str) or not _DATETIME[aware].match(value):
        raise _expected(name, what, value)
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise _expected(name, what, value) from None


def _check_date(name: str, value: Any) -> None:
    if not isinstance(value, str) or not _DATE_RE.match(value):
        raise _expected(name, "an ISO 8601 date (e.g. 2024-05-01)", value)
    try:
        date.fromisoformat(value)
    except ValueError:
        raise _expected(name, "an ISO 8601 date (e.g. 2024-05-01)", value) from None


def _check_enum(spec: ArgSpec, value: Any) -> None:
    if spec.enum is not None and value not in spec.enum:
        shown = ", ".join(show_value(item) for item in spec.enum[:10]) + (", ..." if len(spec.enum) > 10 else "")
        raise _expected(spec.name, f"one of {shown}", value)


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
        _check_enum(spec, value)
    elif kind == "num":
        if not _is_number(value):
            raise _expected(name, "a number", value)
        _check_enum(spec, value)
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
    elif kind == "date":
        _check_date(name, value)
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
            f"{', '.join(show_value(k) for k in sorted(extra))} (expected: {expected})"
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


def _to_uuid(text: str) -> uuid.UUID:
    # uuid.UUID strips braces, but takes the urn: prefix in lower case only
    return uuid.UUID(text[9:] if text[:9].lower() == "urn:uuid:" else text)


def convert(spec: ArgSpec, value: Any) -> Any:
    """Turn a validated JSON value into the Python object the function receives:
    ``datetime`` for ``datetime``/``naive_datetime``, ``date`` for ``date``, and, for
    arguments derived from type hints, ``uuid.UUID`` for ``uuid`` and ``list_uuid``."""
    if value is None:
        return None
    kind = spec.type
    if kind in ("datetime", "naive_datetime"):
        return datetime.fromisoformat(value)
    if kind == "date":
        return date.fromisoformat(value)
    if spec.native and kind == "uuid":
        return _to_uuid(value)
    if spec.native and kind == "list_uuid":
        return [_to_uuid(item) for item in value]
    return value
