"""A telemetry receiver (``GENAPI_TELEMETRY_RECEIVERS``) that appends every event it gets,
with its fields, as one JSON line to the file named by ``GENAPI_TEST_TELEMETRY_FILE``."""

from __future__ import annotations

import json
import os


def record(sender, event: str, **fields) -> None:
    line = json.dumps({"event": event, "pid": os.getpid(), "fields": fields}, default=repr)
    with open(os.environ["GENAPI_TEST_TELEMETRY_FILE"], "a", encoding="utf-8") as sink:
        sink.write(line + "\n")
