"""The Celery app factory, configured from :class:`~workers.settings.Settings`."""

from __future__ import annotations

from celery import Celery

from .settings import Settings


def create_celery_app(settings: Settings, name: str = "genapi") -> Celery:
    """A Celery app on the configured broker: JSON only, results ignored, direct queues on.

    Replies do not use the result backend (workers publish them on the gateway's reply
    channel). A backend is still configured so plain Celery tasks in a service module can
    use ``apply_async().get()`` if they opt in with ``ignore_result=False``.
    """
    app = Celery(name, broker=settings.broker_url, backend=settings.redis_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        event_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_ignore_result=True,
        worker_direct=True,
        task_create_missing_queues=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        # off unless asked (-E, which GENAPI_TASK_EVENTS adds) or Flower turns them on: ~0.5 ms per call
        worker_send_task_events=False,
        task_send_sent_event=False,
        result_expires=300,
        # no unacked-message bookkeeping in Redis (two MULTI/EXEC round trips per task: half the
        # worker's CPU per call). It only re-delivers a dead worker's prefetched tasks after the
        # visibility timeout, long after a gateway call's deadline (the task has expired by then);
        # the gateway ends such calls itself (lost worker, retry or timeout). docs/performance.md
        broker_transport_options={"visibility_timeout": 3600, "ack_emulation": False},
    )
    return app
