"""The service the benchmark's one worker serves: ``genapi worker bench.bench_service``.

Two equivalent echo functions run on the same worker:

- ``bench.echo`` — a GenApi function, called through the gateway over a WebSocket (its
  reply is published on the gateway's reply channel; no result backend);
- ``bench_plain.echo`` — a plain Celery task (``shared_task``, results stored), the floor:
  the caller does ``apply_async(queue="genapi.bench").get()`` through the result backend.

``shared_task`` attaches the plain tasks to every Celery app when it is finalized, so the
app ``genapi worker`` builds serves them without any change to the workers SDK. They are
sent to the service queue ``genapi.bench``, which that worker consumes.

The ``stamp`` twins return the worker's wall clock, so the benchmark can split a round
trip into legs. The GenApi one also returns when the gateway dispatched the call: the
gateway puts ``deadline = time.time() + timeout`` into the task's ``genapi`` header just
before it sends the task.
"""

from __future__ import annotations

import time

from celery import current_task, shared_task

from workers import GenApi

SERVICE = "bench"
QUEUE = "genapi.bench"
PLAIN_ECHO = "bench_plain.echo"
PLAIN_STAMP = "bench_plain.stamp"

api = GenApi(SERVICE)


@api.function("echo", arg_types={"value": "any"})
def echo(value):
    return value


STAMP_TIMEOUT_MS = 5000


@api.function("stamp", arg_types={"value": "any"}, timeout=STAMP_TIMEOUT_MS)
def stamp(value):
    now = time.time()
    meta = getattr(current_task.request, "genapi", None) or {}
    deadline = meta.get("deadline")
    dispatched = None if deadline is None else deadline - STAMP_TIMEOUT_MS / 1000
    return {"value": value, "t": now, "dispatched": dispatched}


@shared_task(name=PLAIN_ECHO, ignore_result=False)
def plain_echo(value):
    return value


@shared_task(name=PLAIN_STAMP, ignore_result=False)
def plain_stamp(value):
    return {"value": value, "t": time.time()}
