"""Arguments from type hints: ``arg_types`` and ``arg_orders`` derived from a signature.

When ``@api.function`` gets no ``arg_types``, :func:`derive` reads the function's
parameters in order: each annotation becomes an argument type, a default becomes
``default_value`` (a default ``None`` makes the argument nullable instead), and
``typing.Annotated`` carries the limits (``Annotated[str, MaxBytes(200)]``). A parameter
that cannot be mapped fails at import, naming the function and the parameter.

=========================================  ==========================
annotation                                 argument type
=========================================  ==========================
``str``                                    ``string``
``int``, ``float``, ``int | float``        ``num``
``bool``                                   ``boolean``
``Literal["a", "b"]`` / ``Literal[1, 2]``  ``string`` / ``num`` with ``enum``
``UUID``, ``date``, ``datetime``           ``uuid``, ``date``, ``datetime``
``list``, ``list[Any]``                    ``list`` (flat scalars)
``list[str]``, ``list[int | float]``       ``list_string``, ``list_num``
``list[UUID]``, ``list[dict]``             ``list_uuid``, ``list_map``
``dict``, ``dict[str, X]``                 ``map``
``Any`` or no annotation                   ``any``
``Optional[X]``, ``X | None``              X with ``allow_nil``
=========================================  ==========================

Pure: no I/O, no Flask, no Celery.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal, Union
from uuid import UUID

from .errors import FunConfigError

__all__ = ["MaxBytes", "MaxItemBytes", "MaxItems", "derive"]


@dataclass(frozen=True)
class MaxBytes:
    """``Annotated[str, MaxBytes(200)]``: at most 200 bytes of UTF-8 (``max_bytes``)."""

    n: int


@dataclass(frozen=True)
class MaxItems:
    """``Annotated[list[str], MaxItems(50)]``: at most 50 items, or keys of a ``dict``
    (``max_items``; on a ``dict`` it makes a checked map, whose values must be flat)."""

    n: int


@dataclass(frozen=True)
class MaxItemBytes:
    """``Annotated[list[str], MaxItemBytes(64)]``: each string item at most 64 bytes of UTF-8
    (``max_item_bytes``, for ``list`` and ``list[str]``)."""

    n: int


#: which argument types each constraint applies to, and the option it sets
_CONSTRAINTS = {
    MaxBytes: ("max_bytes", ("string",)),
    MaxItems: ("max_items", ("list", "list_string", "list_num", "list_uuid", "list_map", "map")),
    MaxItemBytes: ("max_item_bytes", ("list", "list_string")),
}

_SCALARS = {str: "string", int: "num", float: "num", bool: "boolean", UUID: "uuid", datetime: "datetime",
            date: "date"}
_ITEMS = {str: "list_string", int: "list_num", float: "list_num", UUID: "list_uuid", dict: "list_map"}
_SUPPORTED = ("str, int, float, bool, Literal[...], UUID, date, datetime, list, list[str], list[int | float], "
              "list[UUID], list[dict], dict, Any, Optional[...] and Annotated[..., MaxBytes/MaxItems/MaxItemBytes]")


class _Unmappable(Exception):
    """An annotation with no argument type; the message says why."""


def derive(func: Callable[..., Any], where: str, request_info: bool = False) -> dict[str, dict]:
    """``arg_types`` (JSON-shaped, in parameter order) from ``func``'s signature.

    ``where`` names the function in errors (``service.request_type``). With ``request_info``
    the parameter of that name is skipped: the worker passes it itself. Raises
    :class:`FunConfigError` naming the parameter for ``*args``, ``**kwargs``, positional-only
    or keyword-only parameters, unresolvable or unmappable annotations, and defaults that
    are not JSON values.
    """
    arg_types: dict[str, dict] = {}
    for param in inspect.signature(func).parameters.values():
        if request_info and param.name == "request_info":
            continue
        problem = _kind_problem(param)
        if problem:
            raise FunConfigError(f"{where}: parameter {param.name!r}: {problem}")
        arg_types[param.name] = _argument(func, where, param)
    return arg_types


def _kind_problem(param: inspect.Parameter) -> str | None:
    kind = param.kind
    if kind is param.VAR_POSITIONAL or kind is param.VAR_KEYWORD:
        return "*args and **kwargs cannot be declared from type hints: give arg_types"
    if kind is param.POSITIONAL_ONLY:
        return "positional-only parameters cannot be arguments (arguments are named): give arg_types"
    if kind is param.KEYWORD_ONLY:
        return "keyword-only parameters cannot be arguments (the worker passes arguments by position)"
    return None


def _argument(func: Callable[..., Any], where: str, param: inspect.Parameter) -> dict:
    hint = _resolve(func, where, param)
    try:
        entry = _entry(hint)
    except _Unmappable as exc:
        raise FunConfigError(f"{where}: parameter {param.name!r}: {exc}") from None
    default = param.default
    if default is None:
        entry["allow_nil"] = True
    elif default is not param.empty:
        if not _is_json(default):
            raise FunConfigError(f"{where}: parameter {param.name!r}: default {default!r} is not a JSON value "
                                 "(str, int, float, bool, None, or lists and dicts of those)")
        entry["default_value"] = default
    return entry


def _resolve(func: Callable[..., Any], where: str, param: inspect.Parameter) -> Any:
    """The parameter's annotation, evaluated (string annotations included), extras kept."""
    if param.annotation is param.empty:
        return Any
    holder = types.SimpleNamespace(__annotations__={param.name: param.annotation})
    namespace = getattr(inspect.unwrap(func), "__globals__", {})
    try:
        return typing.get_type_hints(holder, globalns=namespace, include_extras=True)[param.name]
    except Exception as exc:  # NameError, SyntaxError, TypeError: whatever evaluating it raised
        raise FunConfigError(f"{where}: parameter {param.name!r}: cannot evaluate the type hint "
                             f"{param.annotation!r} ({type(exc).__name__}: {exc})") from None


def _entry(hint: Any) -> dict:
    """The JSON-shaped ``arg_types`` entry of one annotation."""
    constraints: list[Any] = []
    allow_nil = False
    while True:  # peel Annotated[...] and Optional[...] in any nesting
        if typing.get_origin(hint) is Annotated:
            constraints.extend(hint.__metadata__)
            hint = hint.__origin__
        elif _is_union(hint) and type(None) in typing.get_args(hint):
            allow_nil = True
            rest = tuple(arg for arg in typing.get_args(hint) if arg is not type(None))
            hint = rest[0] if len(rest) == 1 else Union[rest]  # noqa: UP007 (a runtime union of several)
        else:
            break
    entry = _base(hint)
    if entry.pop("allow_nil", False) or allow_nil:
        entry["allow_nil"] = True
    for constraint in constraints:
        if type(constraint) not in _CONSTRAINTS:
            continue  # metadata for someone else
        option, kinds = _CONSTRAINTS[type(constraint)]
        if entry["type"] not in kinds:
            raise _Unmappable(f"{type(constraint).__name__} does not apply to {_show(hint)} "
                              f"(argument type {entry['type']})")
        entry[option] = constraint.n
    return entry


def _base(hint: Any) -> dict:
    if hint is Any:
        return {"type": "any"}
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]}
    if _is_number_union(hint):
        return {"type": "num"}
    origin = typing.get_origin(hint) or hint
    if origin is Literal:
        return _literal(hint)
    if origin is list:
        return {"type": _list_type(hint)}
    if origin is dict:
        args = typing.get_args(hint)
        if args and args[0] is not str:
            raise _Unmappable(f"{_show(hint)} cannot be mapped: JSON object keys are strings (use dict[str, ...])")
        return {"type": "map"}
    raise _Unmappable(f"type hint {_show(hint)} cannot be mapped to an argument type (supported: {_SUPPORTED}); "
                      "give arg_types instead")


def _literal(hint: Any) -> dict:
    values = list(typing.get_args(hint))
    entry: dict[str, Any] = {}
    if None in values:
        values.remove(None)
        entry["allow_nil"] = True
    if values and all(isinstance(v, str) for v in values):
        return {**entry, "type": "string", "enum": values}
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        return {**entry, "type": "num", "enum": values}
    raise _Unmappable(f"{_show(hint)} cannot be mapped: a Literal lists strings only or numbers only")


def _list_type(hint: Any) -> str:
    args = typing.get_args(hint)
    if not args or args[0] is Any:
        return "list"
    item = args[0]
    if _is_number_union(item):
        return "list_num"
    item_origin = typing.get_origin(item) or item
    if item_origin is dict and typing.get_args(item)[:1] in ((), (str,)):
        return "list_map"
    if item in _ITEMS:
        return _ITEMS[item]
    raise _Unmappable(f"{_show(hint)} cannot be mapped: use list, list[str], list[int | float], list[UUID] "
                      "or list[dict] (or give arg_types)")


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType)


def _is_number_union(hint: Any) -> bool:
    return _is_union(hint) and set(typing.get_args(hint)) <= {int, float}


def _is_json(value: Any) -> bool:
    """A value that survives a JSON round trip unchanged (no tuples, no NaN)."""
    if value is None or isinstance(value, (str, bool, int)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_is_json(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _is_json(item) for key, item in value.items())
    return False


def _show(hint: Any) -> str:
    return inspect.formatannotation(hint)

