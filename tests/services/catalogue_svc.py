"""Twins for the catalogue tests (``genapi worker tests.services.catalogue_svc``).

For each argument type, ``<kind>_x`` declares ``x`` with explicit ``arg_types`` and
``<kind>_h`` declares it with a type hint; both answer with what the function received.
``naive_datetime`` and checked maps with ``required``/``accept`` have no type hint: they
are explicit only.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from workers import GenApi, MaxBytes, MaxItemBytes, MaxItems

api = GenApi("catalogue")


def received(x: Any) -> dict:
    """What the function got: its Python type (and its items' types) and the value, with
    objects JSON cannot hold as text."""
    items = sorted({type(item).__name__ for item in x}) if isinstance(x, list) else None
    return {"type": type(x).__name__, "items": items, "value": json.loads(json.dumps(x, default=str))}


@api.function("string_x", arg_types={"x": "string"})
def string_x(x):
    """Echo a string.

    Both twins share this description's first paragraph."""
    return received(x)


@api.function("string_h")
def string_h(x: str):
    """Echo a string.

    Both twins share this description's first paragraph."""
    return received(x)


@api.function("short_x", arg_types={"x": {"type": "string", "max_bytes": 4}})
def short_x(x):
    return received(x)


@api.function("short_h")
def short_h(x: Annotated[str, MaxBytes(4)]):
    return received(x)


@api.function("level_x", arg_types={"x": {"type": "string", "enum": ["low", "high"]}})
def level_x(x):
    return received(x)


@api.function("level_h")
def level_h(x: Literal["low", "high"]):
    return received(x)


@api.function("num_x", arg_types={"x": "num"})
def num_x(x):
    return received(x)


@api.function("num_h")
def num_h(x: float):
    return received(x)


@api.function("choice_x", arg_types={"x": {"type": "num", "enum": [1, 2.5]}})
def choice_x(x):
    return received(x)


@api.function("choice_h")
def choice_h(x: Literal[1, 2.5]):
    return received(x)


@api.function("boolean_x", arg_types={"x": "boolean"})
def boolean_x(x):
    return received(x)


@api.function("boolean_h")
def boolean_h(x: bool):
    return received(x)


@api.function("uuid_x", arg_types={"x": "uuid"})
def uuid_x(x):
    return received(x)


@api.function("uuid_h")
def uuid_h(x: uuid.UUID):
    return received(x)


@api.function("date_x", arg_types={"x": "date"})
def date_x(x):
    return received(x)


@api.function("date_h")
def date_h(x: date):
    return received(x)


@api.function("datetime_x", arg_types={"x": "datetime"})
def datetime_x(x):
    return received(x)


@api.function("datetime_h")
def datetime_h(x: datetime):
    return received(x)


@api.function("any_x", arg_types={"x": "any"})
def any_x(x):
    return received(x)


@api.function("any_h")
def any_h(x):
    return received(x)


@api.function("list_x", arg_types={"x": {"type": "list", "max_items": 3}})
def list_x(x):
    return received(x)


@api.function("list_h")
def list_h(x: Annotated[list, MaxItems(3)]):
    return received(x)


@api.function("strings_x", arg_types={"x": {"type": "list_string", "max_items": 2, "max_item_bytes": 3}})
def strings_x(x):
    return received(x)


@api.function("strings_h")
def strings_h(x: Annotated[list[str], MaxItems(2), MaxItemBytes(3)]):
    return received(x)


@api.function("nums_x", arg_types={"x": "list_num"})
def nums_x(x):
    return received(x)


@api.function("nums_h")
def nums_h(x: list[int | float]):
    return received(x)


@api.function("uuids_x", arg_types={"x": "list_uuid"})
def uuids_x(x):
    return received(x)


@api.function("uuids_h")
def uuids_h(x: list[uuid.UUID]):
    return received(x)


@api.function("maps_x", arg_types={"x": "list_map"})
def maps_x(x):
    return received(x)


@api.function("maps_h")
def maps_h(x: list[dict]):
    return received(x)


@api.function("map_x", arg_types={"x": "map"})
def map_x(x):
    return received(x)


@api.function("map_h")
def map_h(x: dict[str, Any]):
    return received(x)


@api.function("flat_x", arg_types={"x": {"type": "map", "max_items": 2}})
def flat_x(x):
    return received(x)


@api.function("flat_h")
def flat_h(x: Annotated[dict, MaxItems(2)]):
    return received(x)


@api.function("nullable_x", arg_types={"x": {"type": "string", "allow_nil": True}})
def nullable_x(x):
    return received(x)


@api.function("nullable_h")
def nullable_h(x: str | None = None):
    return received(x)


@api.function("default_x", arg_types={"x": {"type": "num", "default_value": 7}})
def default_x(x):
    return received(x)


@api.function("default_h")
def default_h(x: int = 7):
    return received(x)


@api.function("naive_x", arg_types={"x": "naive_datetime"})
def naive_x(x):
    return received(x)


@api.function("checked_x", arg_types={"x": {"type": "map", "required": ["k"], "accept": ["k", "v"]}})
def checked_x(x):
    return received(x)
