"""Exceptions of the workers SDK."""

from __future__ import annotations


class GenApiError(Exception):
    """Raise from a service function to answer the call with an error.

    The client sees ``Internal Server Error`` (``Internal Server Error: <reason>`` when the
    gateway runs with ``GENAPI_DETAIL_ERROR`` on). Any other exception is treated the same
    way, but only a ``GenApiError`` skips the traceback in the worker's log.
    """

    def __init__(self, reason: object = "error") -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return str(self.reason)


class FunConfigError(ValueError):
    """A function's configuration is invalid; raised when the decorator runs (at import)."""
