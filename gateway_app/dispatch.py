"""The seam between the pipeline and Celery: send one call as a task.

:class:`CeleryDispatcher` is the real one. Tests of the pipeline can pass any object with
the same ``send`` method.
"""

from __future__ import annotations

from typing import Any, Protocol

from celery import Celery


class Dispatcher(Protocol):
    def send(self, task_name: str, args: dict, queue: str, timeout_s: float | None, meta: dict | None) -> None:
        """Enqueue the task; raise on broker failure."""


class CeleryDispatcher:
    """Sends tasks with ``send_task``: JSON, results ignored, expiring with the deadline."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def send(self, task_name: str, args: dict, queue: str, timeout_s: float | None, meta: dict | None) -> None:
        options: dict[str, Any] = {"queue": queue, "ignore_result": True}
        if timeout_s is not None:
            # a task still queued when the caller gave up is discarded, never run late
            options["expires"] = timeout_s
        if meta is not None:
            options["headers"] = {"genapi": meta}
        self.app.send_task(task_name, kwargs=args, **options)
