"""CeleryGenApi workers SDK: declare functions, run them on Celery workers.

This package never imports Flask. ``genapi worker MODULE...`` imports the modules, finds
their :class:`GenApi` services and serves them.

Public names are imported lazily, so a pure module of this package (``workers.argtypes``,
``workers.schema``) can be imported without loading Celery — the Python client does.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ArgSpec": "workers.argtypes",
    "ArgumentError": "workers.argtypes",
    "create_celery_app": "workers.celery_app",
    "FunConfigError": "workers.errors",
    "GenApiError": "workers.errors",
    "FunConfig": "workers.funconfig",
    "FunConfigSchema": "workers.funconfig",
    "load_funconfig": "workers.funconfig",
    "Function": "workers.genapi",
    "GenApi": "workers.genapi",
    "Settings": "workers.settings",
    "SettingsError": "workers.settings",
    "MaxBytes": "workers.typehints",
    "MaxItemBytes": "workers.typehints",
    "MaxItems": "workers.typehints",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'workers' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
