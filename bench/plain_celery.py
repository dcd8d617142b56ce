"""Plain Celery as a user would run it: the benchmark's floor.

    BENCH_PLAIN_CELERY_URL=redis://127.0.0.1:PORT/1 python -m celery -A bench.plain_celery worker -P solo

A minimal app of its own, with no GenApi code: JSON, a Redis broker and the same Redis as
result backend (the URL comes from ``BENCH_PLAIN_CELERY_URL``; the benchmark gives it a
database of its own), Celery's defaults otherwise (no task events, default queue
``celery``). ``echo`` is the task the floor measures; ``stamp`` returns the worker's wall
clock so a round trip can be split into legs.
"""

from __future__ import annotations

import os
import time

from celery import Celery

URL_ENV = "BENCH_PLAIN_CELERY_URL"

try:
    URL = os.environ[URL_ENV]
except KeyError:
    raise RuntimeError(f"bench.plain_celery: set {URL_ENV} to the Redis URL (broker and result backend)") from None

app = Celery("plain_celery", broker=URL, backend=URL)
app.conf.update(
    task_serializer="json",  # Celery's defaults, spelled out
    result_serializer="json",
    accept_content=["json"],
)


@app.task(name="plain_celery.echo")
def echo(value):
    return value


@app.task(name="plain_celery.stamp")
def stamp(value):
    return {"value": value, "t": time.time()}
