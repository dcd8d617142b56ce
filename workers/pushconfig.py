"""PushConfig: what a worker sends a gateway about one service, and how it is signed.

A worker pushes one PushConfig per service when it starts (reference §3.5), and answers a
gateway's pull with the same shape (§3.4)::

    {"service": "billing", "nodes": ["genapi-12@host"], "config_version": "3f1c…",
     "fun_configs": [{...FunConfig JSON...}], "force": false, "push_id": "…",
     "signature": "…"}

With ``GENAPI_PUSH_TOKEN`` set, the worker signs it: an HMAC-SHA256 keyed with the token
over a canonical encoding (JSON, keys sorted, no spaces, UTF-8) of every field but
``signature``. Gateways with the same token recompute it and compare in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable
from typing import Any

from .funconfig import FunConfig

SIGNATURE = "signature"


def canonical(data: Any) -> bytes:
    """The byte string both sides sign: the same data always encodes the same way."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def signature(data: dict, token: str) -> str:
    """HMAC-SHA256 (hex) of ``data`` without its ``signature`` field."""
    unsigned = {key: value for key, value in data.items() if key != SIGNATURE}
    return hmac.new(token.encode("utf-8"), canonical(unsigned), hashlib.sha256).hexdigest()


def signature_valid(data: dict, token: str) -> bool:
    """Does ``data`` carry the signature ``token`` gives it? Constant-time comparison."""
    given = data.get(SIGNATURE)
    if not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(given.encode("utf-8"), signature(data, token).encode("utf-8"))


def config_version(configs: Iterable[FunConfig]) -> str:
    """A stable hash of a service's FunConfigs: the same code gives the same version."""
    shapes = sorted((c.to_json() for c in configs), key=lambda c: (c["request_type"], c["version"] or ""))
    return hashlib.sha256(canonical(shapes)).hexdigest()[:16]


def build(service: str, node_id: str, configs: Iterable[FunConfig], version: str, token: str | None,
          force: bool = False, **extra: Any) -> dict:
    """A PushConfig for ``service`` from this node, signed when a token is given."""
    data = {
        "service": service,
        "nodes": [node_id],
        "config_version": version,
        "fun_configs": [c.to_json() for c in configs],
        "force": force,
        "push_id": uuid.uuid4().hex,
        **extra,
    }
    if token:
        data[SIGNATURE] = signature(data, token)
    return data
