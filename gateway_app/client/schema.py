"""Checking call arguments against a catalogue entry's ``args_schema``, before sending.

The gateway describes each function's arguments as JSON Schema (draft 2020-12) in
``gateway/functions``. This is a small validator of the keywords that catalogue uses:
``type`` (a name or a list, ``"null"`` included), ``enum``, ``maxLength``, ``x-max-bytes``
(ours: UTF-8 byte length), ``pattern``, ``format`` (not checked; it only picks the wording),
``maxItems``, ``items``, ``maxProperties``, ``required``, ``additionalProperties`` (a boolean
or a schema), ``propertyNames``, ``properties``, ``default`` (an annotation), and ``anyOf``
and ``not`` (the catalogue writes "any value but null" as ``{"not": {"type": "null"}}``).
Other keywords are ignored, as JSON Schema says.

Messages follow the gateway's wording (``missing argument "key"``, ``"n" must be a number,
got string "2"``); the client prefixes them with ``Invalid arguments: ``. Pure functions, no
I/O, no ``jsonschema`` dependency.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from workers.argtypes import kind_of, show_value

_MISSING = object()

_ONE = {"string": "a string", "number": "a number", "integer": "an integer", "boolean": "true or false",
        "array": "a list", "object": "an object", "null": "null"}
_NOUN = {"string": "string", "number": "number", "integer": "integer", "boolean": "boolean",
         "array": "list", "object": "object", "null": "null"}
_FORMATS = {
    "uuid": "a UUID string",
    "date-time": "an ISO 8601 datetime with a UTC offset (e.g. 2024-05-01T12:00:00Z)",
    "date": "an ISO 8601 date (e.g. 2024-05-01)",
}


class SchemaError(ValueError):
    """The arguments do not match the schema; the message names the argument."""


# ------------------------------------------------------------------------------ helpers


def _is_type(value: Any, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if name == "integer":
        return _is_type(value, "number") and (isinstance(value, int) or value.is_integer())
    if name == "string":
        return isinstance(value, str)
    if name == "array":
        return isinstance(value, (list, tuple))
    if name == "object":
        return isinstance(value, Mapping)
    return True  # an unknown type name constrains nothing


def _types(schema: Mapping) -> list[str] | None:
    kind = schema.get("type")
    if kind is None:
        return None
    return [kind] if isinstance(kind, str) else list(kind)


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``true`` is not ``1``; ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_type(a, "number") and _is_type(b, "number"):
        return a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _what(schema: Mapping) -> str:
    """How a message describes what the schema wants."""
    if schema.get("format") in _FORMATS:
        return _FORMATS[schema["format"]]
    names = [t for t in (_types(schema) or []) if t != "null"]
    if not names:
        return "a value"
    if len(names) == 1:
        return _ONE.get(names[0], names[0])
    nouns = [_NOUN.get(t, t) for t in names]
    return "a " + ", ".join(nouns[:-1]) + " or " + nouns[-1]


def _expected(where: str, what: str, value: Any) -> SchemaError:
    return SchemaError(f'"{where}" must be {what}, got {kind_of(value)} {show_value(value)}')


@lru_cache(maxsize=256)
def ecma_regex(pattern: str) -> re.Pattern:
    """An ECMA-262 ``pattern`` (as JSON Schema means it) compiled for Python's ``re``.

    ``\\d`` and ``\\w`` are ASCII (``re.ASCII``), ``$`` ends only at the end of the text
    (Python's ``$`` would also match before a final newline), ``(?<name>`` is a named group.
    A pattern is searched, not anchored, as in JSON Schema."""
    out, index, in_class = [], 0, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            out.append(pattern[index:index + 2])
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "$":
            char = r"\Z"
        elif char == "(" and pattern.startswith("?<", index + 1) and pattern[index + 3:index + 4] not in ("=", "!"):
            char = "(?P"
            index += 1  # the "?" is part of the replacement
        out.append(char)
        index += 1
    return re.compile("".join(out), re.ASCII)


# ------------------------------------------------------------------------------ values


def check(schema: Any, value: Any, where: str) -> None:
    """Raise :class:`SchemaError` unless ``value`` matches ``schema``; ``where`` names it."""
    if schema is True or schema is None:
        return
    if schema is False:
        raise SchemaError(f'"{where}" is not allowed')
    if "anyOf" in schema:
        _check_any_of(schema["anyOf"], value, where)
    types = _types(schema)
    if types is not None and not any(_is_type(value, t) for t in types):
        raise _expected(where, _what(schema), value)
    if "not" in schema:
        _check_not(schema["not"], value, where)
    if "enum" in schema and not any(_same(value, option) for option in schema["enum"]):
        shown = [option for option in schema["enum"] if option is not None]
        options = ", ".join(show_value(option) for option in shown[:10]) + (", ..." if len(shown) > 10 else "")
        raise _expected(where, f"one of {options}", value)
    if isinstance(value, str):
        _check_string(schema, value, where)
    elif isinstance(value, (list, tuple)):
        _check_array(schema, value, where)
    elif isinstance(value, Mapping):
        _check_object(schema, value, where)


def _check_any_of(branches: list, value: Any, where: str) -> None:
    first: SchemaError | None = None
    for branch in branches:
        try:
            check(branch, value, where)
            return
        except SchemaError as exc:
            # the null branch explains nothing; report the first real alternative
            if first is None and not (isinstance(branch, Mapping) and _types(branch) == ["null"]):
                first = exc
    raise first or _expected(where, "null", value)


def _check_not(schema: Any, value: Any, where: str) -> None:
    try:
        check(schema, value, where)
    except SchemaError:
        return
    if isinstance(schema, Mapping) and _types(schema) == ["null"]:
        raise SchemaError(f'"{where}" must not be null')
    raise SchemaError(f'"{where}" must not be {_what(schema) if isinstance(schema, Mapping) else "this value"}')


def _check_string(schema: Mapping, value: str, where: str) -> None:
    limit = schema.get("x-max-bytes")
    if isinstance(limit, int) and len(value) * 4 > limit:
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise SchemaError(f'"{where}" is too long: max {limit} bytes, got {size} bytes')
    limit = schema.get("maxLength")
    if isinstance(limit, int) and len(value) > limit:
        raise SchemaError(f'"{where}" is too long: max {limit} characters, got {len(value)} characters')
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and not ecma_regex(pattern).search(value):
        what = _FORMATS.get(schema.get("format"), "a string of the form its pattern describes (see the catalogue)")
        raise _expected(where, what, value)


def _check_array(schema: Mapping, value: list | tuple, where: str) -> None:
    limit = schema.get("maxItems")
    if isinstance(limit, int) and len(value) > limit:
        raise SchemaError(f'"{where}" has too many items: max {limit}, got {len(value)}')
    items = schema.get("items")
    if items is not None and not isinstance(items, list):
        for index, item in enumerate(value):
            check(items, item, f"{where}[{index}]")


def _check_object(schema: Mapping, value: Mapping, where: str) -> None:
    limit = schema.get("maxProperties")
    if isinstance(limit, int) and len(value) > limit:
        raise SchemaError(f'"{where}" has too many keys: max {limit}, got {len(value)}')
    missing = [key for key in schema.get("required", ()) if key not in value]
    if missing:
        raise SchemaError(f'"{where}" is missing required keys: {", ".join(missing)}')
    properties = schema.get("properties") or {}
    names = schema.get("propertyNames")
    extra_schema = schema.get("additionalProperties", True)
    rejected = [key for key in value if not _name_ok(names, key)]
    if extra_schema is False:
        rejected += [key for key in value if key not in properties and key not in rejected]
    if rejected:
        raise SchemaError(f'"{where}" has keys that are not accepted: {", ".join(sorted(map(str, rejected)))}')
    for key, item in value.items():
        check(properties.get(key, extra_schema), item, f"{where}.{key}")


def _name_ok(schema: Any, key: Any) -> bool:
    if schema is None:
        return True
    try:
        check(schema, key, "key")
    except SchemaError:
        return False
    return True


# ------------------------------------------------------------------------------ arguments


def _allows_null(schema: Any) -> bool:
    try:
        check(schema, None, "")
    except SchemaError:
        return False
    return True


def check_args(schema: Mapping | bool | None, args: Mapping[str, Any]) -> None:
    """Check a call's ``args`` (an object) against its ``args_schema``.

    Problems are found in the gateway's order: undeclared arguments first, then each
    declared one in turn (missing, null, wrong value). Raises :class:`SchemaError`."""
    if schema is None or schema is True:
        return
    if schema is False:
        raise SchemaError("this function takes no arguments")
    properties = schema.get("properties") or {}
    if schema.get("additionalProperties", True) is False:
        extra = sorted(str(key) for key in args if key not in properties)
        if extra:
            expected = ", ".join(f'"{name}"' for name in properties) or "none"
            plural = "s" if len(extra) > 1 else ""
            shown = ", ".join(show_value(k) for k in extra)
            raise SchemaError(f"unknown argument{plural} {shown} (expected: {expected})")
    required = list(schema.get("required", ()))
    for name, sub in properties.items():
        value = args.get(name, _MISSING)
        if value is _MISSING:
            if name in required:
                raise SchemaError(f'missing argument "{name}"')
        elif value is None and not _allows_null(sub):
            raise SchemaError(f'"{name}" must not be null')
        else:
            check(sub, value, name)
    for name in required:
        if name not in properties and name not in args:
            raise SchemaError(f'missing argument "{name}"')
    limit = schema.get("maxProperties")
    if isinstance(limit, int) and len(args) > limit:
        raise SchemaError(f"too many arguments: max {limit}, got {len(args)}")
    rejected = sorted(str(key) for key in args if not _name_ok(schema.get("propertyNames"), key))
    if rejected:
        raise SchemaError(f"arguments that are not accepted: {', '.join(rejected)}")
    extra_schema = schema.get("additionalProperties", True)
    for key, value in args.items():
        if key not in properties:
            check(extra_schema, value, str(key))
