"""CeleryGenApi gateway: a WebSocket API gateway that runs calls as Celery tasks.

Public names are imported lazily, so ``genapi worker`` and ``genapi gateway`` start
without loading Flask and gevent-sensitive modules before they need them.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "create_app": "gateway_app.app",
    "Gateway": "gateway_app.extension",
    "Identity": "gateway_app.auth",
    "mint_token": "gateway_app.auth",
    "verify_token": "gateway_app.auth",
    "token_authenticator": "gateway_app.auth",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gateway_app' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
