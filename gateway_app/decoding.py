"""Turning one raw WebSocket frame into a :class:`Request` (reference §1.3, §1.6).

The size limit is checked on the raw bytes before any JSON (or MessagePack) parsing. Every failure raises
:class:`~gateway_app.errors.Rejected` with an ``Invalid request: …`` message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import msgpack

from workers.protocol import UNKNOWN_REQUEST_ID

from . import errors

_REQUIRED = ("request_type", "request_id", "service")


@dataclass(frozen=True)
class Request:
    """A decoded client request. ``user_id`` and roles are not here: they come from the session."""

    service: str
    request_type: str
    request_id: Any
    args: dict
    version: str | None = None
    device_id: str | None = None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def frame_size(raw: str | bytes) -> int:
    """The frame's length in UTF-8 bytes, without encoding short strings."""
    if isinstance(raw, bytes):
        return len(raw)
    return len(raw) if raw.isascii() else len(raw.encode("utf-8", "surrogatepass"))


def parse(raw: str | bytes, max_bytes: int, binary: bool = False) -> dict:
    """Size check, then JSON (or MessagePack: a binary frame on a ``genapi.msgpack``
    connection); the result is a JSON object (dict)."""
    size = frame_size(raw)
    if size > max_bytes:
        raise errors.invalid(
            f"Request payload exceeds maximum size of {max_bytes} bytes (got {size} bytes)")
    if binary and isinstance(raw, bytes):
        return _unpack(raw)
    try:
        payload = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise errors.invalid("Malformed request payload: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.invalid(f"Malformed request payload: not valid JSON ({exc})") from None
    if not isinstance(payload, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
            type(payload), "a number")
        raise errors.invalid(f"Malformed request payload: expected a JSON object, got {kind}")
    return payload


#: MessagePack type bytes of bin, ext and float values: a frame with none of them holds only
#: JSON's types (a float may be NaN or infinite, which JSON has not)
_NOT_JSON_MARKERS = re.compile(rb"[\xc4-\xcb\xd4-\xd8]")


def _unpack(raw: bytes) -> dict:
    """A MessagePack request: the same map as the JSON one, with JSON's types only."""
    try:
        payload = msgpack.unpackb(raw, raw=False, strict_map_key=True, timestamp=0)
    except RecursionError:
        raise errors.invalid("Malformed request payload: nested too deeply") from None
    except (ValueError, msgpack.UnpackException) as exc:  # ExtraData, bad UTF-8, non-str keys
        raise errors.invalid(f"Malformed request payload: not valid MessagePack ({exc})") from None
    if not isinstance(payload, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
            type(payload), "a number")
        raise errors.invalid(f"Malformed request payload: expected a map, got {kind}")
    # binary and extension values have no JSON form (the call goes on as JSON): look for them
    # only when a byte that could start one occurs at all (it may be inside a string)
    if _NOT_JSON_MARKERS.search(raw) and not _json_types(payload):
        raise errors.invalid("Malformed request payload: binary and extension values are not supported")
    return payload


def _json_types(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(key, str) and _json_types(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_json_types(item) for item in value)
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    return value is None or isinstance(value, (str, int, bool))


def request_id_of(payload: dict) -> Any:
    """The id to echo in an error frame: the payload's if the key exists, else ``unknown``."""
    return payload.get("request_id", UNKNOWN_REQUEST_ID) if isinstance(payload, dict) else UNKNOWN_REQUEST_ID


def _missing(value: Any) -> bool:
    return value is None or value == ""


def decode(payload: dict) -> Request:
    """Check the required fields and their types; ``args`` null or absent means ``{}``."""
    missing = [name for name in _REQUIRED if _missing(payload.get(name))]
    if missing:
        raise errors.invalid(f"Missing required fields: {', '.join(missing)}")
    problems = [f"{name} must be a string" for name in ("service", "request_type")
                if not isinstance(payload[name], str)]
    args = payload.get("args")
    if args is None:
        args = {}
    elif not isinstance(args, dict):
        problems.append("args must be an object")
    for name in ("version", "device_id"):
        if payload.get(name) is not None and not isinstance(payload[name], str):
            problems.append(f"{name} must be a string")
    if problems:
        raise errors.invalid(f"Malformed request payload: {'; '.join(problems)}")
    version = payload.get("version") or None
    return Request(
        service=payload["service"],
        request_type=payload["request_type"],
        request_id=payload["request_id"],
        args=args,
        version=None if version == "0.0.0" else version,
        device_id=payload.get("device_id") or None,
    )
