"""Frames on the wire: encoding requests, decoding responses, recognising relay frames.

``encoding="json"`` sends JSON text frames and asks for no subprotocol; ``"msgpack"`` asks for
the ``genapi.msgpack`` subprotocol, and every frame both ways is then a MessagePack binary
frame holding the same map. Pure functions, no I/O.
"""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from urllib.parse import quote

import msgpack

MSGPACK_SUBPROTOCOL = "genapi.msgpack"
ENCODINGS = ("json", "msgpack")
DEFAULT_URL = "ws://127.0.0.1:8000/ws"

_RELAY_KEYS = frozenset({"group_id", "from_user_id", "message", "timestamp"})
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def ws_url(url: str, token: str | None) -> str:
    """``url`` with ``token`` appended as the ``token`` query parameter (when given)."""
    if token is None:
        return url
    return f"{url}{'&' if '?' in url else '?'}token={quote(token, safe='')}"


def plain(value: Any) -> Any:
    """``value`` as plain JSON-shaped data: tuples become lists; datetimes, dates and times
    ISO 8601 strings; UUIDs their canonical string; enums their value. Raises ``TypeError``
    on anything else that JSON cannot carry."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"argument keys must be strings, got {type(key).__name__} {key!r}")
            out[key] = plain(item)
        return out
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return plain(value.value)
    raise TypeError(f"{type(value).__name__} values cannot be sent: {value!r}")


def request(service: str, request_type: str, request_id: str, args: Mapping | None, version: str | None) -> dict:
    """A request frame (``args`` already plain)."""
    frame: dict[str, Any] = {"service": service, "request_type": request_type, "request_id": request_id,
                             "args": dict(args or {})}
    if version is not None:
        frame["version"] = version
    return frame


def encode(frame: dict, encoding: str) -> str | bytes:
    """One frame, as the connection's encoding sends it. ``ValueError`` for NaN or infinity."""
    if encoding == "msgpack":
        return msgpack.packb(frame, use_bin_type=True)
    return _dumps(frame)


def decode(data: str | bytes) -> Any:
    """A received frame: JSON text, or a MessagePack binary frame. ``ValueError`` if neither."""
    if isinstance(data, bytes):
        try:
            return msgpack.unpackb(data, raw=False, strict_map_key=False)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise ValueError(f"not a MessagePack frame: {exc}") from exc
    return json.loads(data)


@dataclass(frozen=True)
class RelayMessage:
    """A message a relay group delivered to this connection (a *relay frame*).

    ``request_id`` is the **sender's** request id (``relay-`` and 12 hex digits when a worker
    posted it); ``frame`` is the whole frame."""

    group_id: str
    from_user_id: str | None
    message: Any
    timestamp: str
    request_id: Any
    frame: dict


def relay_message(frame: dict) -> RelayMessage | None:
    """The relay message a frame carries, or ``None`` when it is not a relay frame.

    A relay frame is a plain success (``async`` and ``has_more`` false) whose result holds
    exactly ``group_id``, ``from_user_id``, ``message`` and ``timestamp``."""
    result = frame.get("result")
    if not (frame.get("success") is True and frame.get("async") is False and frame.get("has_more") is False
            and isinstance(result, dict) and result.keys() == _RELAY_KEYS):
        return None
    return RelayMessage(result["group_id"], result["from_user_id"], result["message"], result["timestamp"],
                        frame.get("request_id"), frame)
