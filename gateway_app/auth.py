"""Who is calling: identities, signed client tokens and the pluggable authenticator.

An authenticator is a callable ``(flask_request, settings) -> Identity | None`` named by
``GENAPI_AUTHENTICATOR`` (``module:function``). The default,
:func:`token_authenticator`, reads ``?token=`` minted by :func:`mint_token`
(``genapi token USER``). ``None`` means "not authenticated".
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from itsdangerous import BadData, URLSafeSerializer

from workers.settings import Settings

_SALT = "genapi.client-token"


@dataclass(frozen=True)
class Identity:
    """The caller, fixed when the WebSocket connects. Never taken from a request payload."""

    user_id: str
    roles: tuple[str, ...] = field(default_factory=tuple)
    device_id: str | None = None


def _serializer(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt=_SALT)


def mint_token(secret_key: str, user_id: str, roles: list[str] | tuple[str, ...] = (),
               device_id: str | None = None, ttl: int = 86400) -> str:
    """A signed token carrying the user id, roles and optional device id, valid ``ttl`` s."""
    if not user_id:
        raise ValueError("user id must not be empty")
    if ttl <= 0:
        raise ValueError("ttl must be a positive number of seconds")
    claims = {"sub": user_id, "roles": list(roles), "exp": int(time.time()) + int(ttl)}
    if device_id:
        claims["dev"] = device_id
    return _serializer(secret_key).dumps(claims)


def verify_token(secret_key: str, token: str, now: float | None = None) -> Identity | None:
    """The token's identity, or ``None`` if it is forged, malformed or expired."""
    try:
        claims = _serializer(secret_key).loads(token)
    except BadData:  # forged, truncated, or a payload that does not decode
        return None
    if not isinstance(claims, dict):
        return None
    user, roles, expires = claims.get("sub"), claims.get("roles", []), claims.get("exp")
    if not isinstance(user, str) or not user or not isinstance(expires, int):
        return None
    if expires <= (time.time() if now is None else now):
        return None
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        return None
    device = claims.get("dev")
    return Identity(user, tuple(r for r in roles if r), device if isinstance(device, str) else None)


def token_authenticator(request: Any, settings: Settings) -> Identity | None:
    """The default authenticator: the signed token in the ``token`` query parameter."""
    token = request.args.get("token")
    return verify_token(settings.secret_key, token) if token else None


Authenticator = Callable[[Any, Settings], "Identity | None"]


def load_authenticator(path: str) -> Authenticator:
    """Import ``module:function``; fail at start-up with a clear message if it is wrong."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"GENAPI_AUTHENTICATOR must be 'module:function', got {path!r}")
    try:
        target = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"GENAPI_AUTHENTICATOR {path!r} cannot be imported: {exc}") from None
    if not callable(target):
        raise ValueError(f"GENAPI_AUTHENTICATOR {path!r} is not callable")
    return target
