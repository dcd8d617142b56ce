"""CeleryGenApi workers SDK: declare functions, run them on Celery workers.

This package never imports Flask. ``genapi worker MODULE...`` imports the modules, finds
their :class:`GenApi` services and serves them.
"""

from .argtypes import ArgSpec, ArgumentError
from .celery_app import create_celery_app
from .errors import FunConfigError, GenApiError
from .funconfig import FunConfig, FunConfigSchema, load_funconfig
from .genapi import Function, GenApi
from .settings import Settings, SettingsError
from .typehints import MaxBytes, MaxItemBytes, MaxItems

__all__ = [
    "ArgSpec",
    "ArgumentError",
    "FunConfig",
    "FunConfigError",
    "FunConfigSchema",
    "Function",
    "GenApi",
    "GenApiError",
    "MaxBytes",
    "MaxItemBytes",
    "MaxItems",
    "Settings",
    "SettingsError",
    "create_celery_app",
    "load_funconfig",
]
