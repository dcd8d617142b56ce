"""JSON Schema (draft 2020-12) of a function's arguments, built from its ``arg_types``.

Pure data, no I/O (no Flask, no Celery). The catalogue (``gateway/functions``,
``GET /functions.json``) publishes :func:`args_schema` so that clients, the try-it page and
docs can check a call before sending it. The schema accepts exactly what
:func:`workers.argtypes.validate_args` accepts:

* ``pattern`` carries the very regular expressions the gateway checks ``uuid``, ``date``,
  ``datetime`` and ``naive_datetime`` with; ``format`` is only an annotation (draft
  2020-12's default), and is looser or stricter than the pattern in places (``"uuid"``
  wants dashes, ``"date-time"`` wants seconds): the pattern decides.
* ``x-max-bytes`` is our own keyword: a string's UTF-8 length in bytes is at most N. Plain
  JSON Schema only counts code points, so ``maxLength: N`` is emitted too as a looser bound
  for validators that ignore unknown keywords.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .argtypes import (
    DATE_PATTERN,
    DATETIME_PATTERN,
    LIST_MAX_ITEMS,
    NAIVE_DATETIME_PATTERN,
    STRING_MAX_BYTES,
    UUID_PATTERN,
    ArgSpec,
)

#: our keyword: the UTF-8 byte length of a string instance is at most its value
MAX_BYTES = "x-max-bytes"

_SCALARS = ["string", "number", "boolean"]


def _string(max_bytes: int) -> dict:
    return {"type": "string", "maxLength": max_bytes, MAX_BYTES: max_bytes}


def _uuid() -> dict:
    return {"type": "string", "format": "uuid", "pattern": UUID_PATTERN}


#: a value inside a checked map: a string, number, boolean, or a flat list of those
_FLAT_VALUE = {
    "type": [*_SCALARS, "array"],
    "maxLength": STRING_MAX_BYTES, MAX_BYTES: STRING_MAX_BYTES,
    "maxItems": LIST_MAX_ITEMS, "items": {"type": _SCALARS},
}


def _map(spec: ArgSpec) -> dict:
    schema: dict[str, Any] = {"type": "object", "maxProperties": spec.item_limit}
    if not spec.strict_map:
        return schema
    if spec.required:
        schema["required"] = list(spec.required)
    if spec.accept:
        schema["propertyNames"] = {"enum": list(spec.accept)}
    schema["additionalProperties"] = _FLAT_VALUE
    return schema


def _list_items(spec: ArgSpec) -> dict:
    kind = spec.type
    if kind == "list":
        return {"type": _SCALARS, "maxLength": spec.max_item_bytes, MAX_BYTES: spec.max_item_bytes}
    if kind == "list_string":
        return _string(spec.max_item_bytes)
    if kind == "list_num":
        return {"type": "number"}
    if kind == "list_uuid":
        return _uuid()
    return {"type": "object"}  # list_map: the objects' contents are not checked


def _value_schema(spec: ArgSpec) -> dict:
    """The schema of a non-null value of ``spec``'s type."""
    kind = spec.type
    if kind == "string":
        schema = _string(spec.max_bytes)
    elif kind == "num":
        schema = {"type": "number"}
    elif kind == "boolean":
        schema = {"type": "boolean"}
    elif kind == "uuid":
        schema = _uuid()
    elif kind == "datetime":
        schema = {"type": "string", "format": "date-time", "pattern": DATETIME_PATTERN}
    elif kind == "naive_datetime":
        schema = {"type": "string", "pattern": NAIVE_DATETIME_PATTERN}
    elif kind == "date":
        schema = {"type": "string", "format": "date", "pattern": DATE_PATTERN}
    elif kind == "map":
        schema = _map(spec)
    elif kind == "any":
        schema = {}
    else:
        schema = {"type": "array", "maxItems": spec.item_limit, "items": _list_items(spec)}
    if spec.enum is not None:
        schema["enum"] = list(spec.enum)
    return schema


def arg_schema(spec: ArgSpec) -> dict:
    """The JSON Schema of one declared argument (``null`` allowed only with ``allow_nil``)."""
    schema = _value_schema(spec)
    if spec.allow_nil:
        if "type" in schema:
            kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            schema["type"] = [*kinds, "null"]
        if "enum" in schema:
            schema["enum"].append(None)
    elif spec.type == "any":
        schema = {"not": {"type": "null"}}
    if spec.has_default:
        schema["default"] = spec.default
    return schema


def args_schema(specs: Mapping[str, ArgSpec]) -> dict:
    """The JSON Schema of a request's ``args`` for a function declaring ``specs``.

    Required: the arguments with neither a default nor ``allow_nil``. Undeclared keys are
    refused, except by a function that declares no arguments: it ignores what it is sent, so
    its schema is any object.
    """
    if not specs:
        return {"type": "object"}
    return {
        "type": "object",
        "properties": {name: arg_schema(spec) for name, spec in specs.items()},
        "required": [name for name, spec in specs.items() if not spec.has_default and not spec.allow_nil],
        "additionalProperties": False,
    }
