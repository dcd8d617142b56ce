"""``Rejected``: how a pipeline step answers a request with an error frame."""

from __future__ import annotations


class Rejected(Exception):
    """Stop the pipeline and answer the request with ``error`` (a catalogue string)."""

    def __init__(self, error: str, can_retry: bool = False) -> None:
        super().__init__(error)
        self.error = error
        self.can_retry = can_retry
