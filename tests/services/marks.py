"""What test services share: a Redis client for the marks they leave (calls counted, nodes
seen) so a test can tell what ran where, and the name of the worker running the call."""

from __future__ import annotations

import os

import redis
from celery import current_task

_redis: redis.Redis | None = None


def marks() -> redis.Redis:
    """One client per worker process, on the stack's Redis (``GENAPI_REDIS_URL``)."""
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(os.environ["GENAPI_REDIS_URL"])
    return _redis


def node() -> str:
    """The worker (Celery node name) running the current task."""
    return current_task.request.hostname
