"""One request in flight: reading its frames without knowing its response mode in advance.

The first frame tells the mode: an error ends any call; ``has_more`` opens a stream (the
``"init"`` frame); ``async`` without ``has_more`` is an async call's ack; anything else is a
sync answer. After an ack, the next frame is the final one; in a stream, frames with
``has_more`` are chunks and the frame without it ends the stream (a last chunk when its
result is not null, else an end frame). See ``docs/modes.md``.

Frames become events on the call's queue; the reader never blocks on a slow consumer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from .errors import GenApiCallError, from_frame


@dataclass(frozen=True)
class Event:
    """What a frame meant for its call: ``chunk``, ``result``, ``end`` or ``error``."""

    kind: str
    value: Any = None


class Call:
    """The state of one request id until its terminal frame."""

    def __init__(self, request_id: str, frame: dict) -> None:
        self.request_id = request_id
        self.frame = frame
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.finished = asyncio.Event()
        self.mode: str | None = None  # "sync", "async" or "stream" once the first frame arrived
        #: the caller stopped waiting; frames are dropped and a running call is cancelled
        self.abandoned = False

    @property
    def opened(self) -> bool:
        """An async ack or a stream's "init" frame has arrived (the call can be cancelled)."""
        return self.mode in ("async", "stream") and not self.finished.is_set()

    def feed(self, frame: dict) -> bool:
        """Take one frame of this call; True when it was the terminal one."""
        if not frame.get("success"):
            return self._finish(Event("error", from_frame(frame)))
        if self.mode is None:
            if frame.get("has_more"):
                self.mode = "stream"
                return False
            if frame.get("async"):
                self.mode = "async"
                return False
            self.mode = "sync"
            return self._finish(Event("result", frame.get("result")))
        if self.mode == "stream":
            if frame.get("has_more"):
                self._put(Event("chunk", frame.get("result")))
                return False
            if frame.get("result") is not None:
                self._put(Event("chunk", frame.get("result")))
            return self._finish(Event("end"))
        return self._finish(Event("result", frame.get("result")))

    def fail(self, error: GenApiCallError) -> None:
        """End the call without a terminal frame (the connection was lost)."""
        self._finish(Event("error", error))

    def _put(self, event: Event) -> None:
        if not self.abandoned:
            self.events.put_nowait(event)

    def _finish(self, event: Event) -> bool:
        self._put(event)
        self.finished.set()
        return True
