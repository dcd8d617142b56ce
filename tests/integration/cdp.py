"""A tiny Chrome DevTools Protocol driver for the browser tests: start headless Chromium, open
pages, evaluate JavaScript in them, take screenshots. Nothing but the ``websockets`` sync client.

Chromium is started with ``--remote-debugging-port=0``; it prints the browser's DevTools URL
("DevTools listening on ws://...") on stderr, which goes to a log file we read. Each page gets
a WebSocket of its own (``/devtools/page/<target id>``). Chromium is stopped by PID.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from websockets.sync.client import connect

from gateway_app import processes

CHROMIUM_MISSING = ("no chromium found (looked for /usr/bin/chromium, chromium, chromium-browser, google-chrome): "
                    "the browser tests need Debian's chromium package (apt-get install chromium; "
                    "scripts/setup.sh installs it when run as root)")
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


def chromium_binary() -> str | None:
    """The Chromium to drive, or ``None`` if none is installed."""
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class CDPError(RuntimeError):
    """A DevTools command failed, or JavaScript threw."""


class Session:
    """One DevTools WebSocket (the browser's or a page's): commands and their answers."""

    def __init__(self, url: str) -> None:
        self.ws = connect(url, max_size=None, open_timeout=10)
        self._ids = itertools.count(1)
        #: events that arrived while waiting for answers (console messages, exceptions, ...)
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, timeout: float = 30) -> dict:
        """Send one command and return its result."""
        command_id = next(self._ids)
        self.ws.send(json.dumps({"id": command_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"DevTools: no answer to {method} within {timeout:.0f}s")
            message = json.loads(self.ws.recv(timeout=remaining))
            if message.get("id") == command_id:
                if "error" in message:
                    raise CDPError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)
                del self.events[:-500]

    def close(self) -> None:
        self.ws.close()


class Page(Session):
    """A browser tab."""

    def __init__(self, url: str, target_id: str) -> None:
        super().__init__(url)
        self.target_id = target_id
        for domain in ("Runtime", "Page", "Log"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": False})

    def evaluate(self, expression: str, timeout: float = 30) -> Any:
        """The value of a JavaScript expression (a promise is awaited), as JSON."""
        reply = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True,
                                               "userGesture": True},
                          timeout=timeout + 5)
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            thrown = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(f"JavaScript threw: {thrown}\nin: {expression[:300]}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 15, what: str | None = None) -> Any:
        """Poll a JavaScript expression until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{what or expression}: not true after {timeout:.0f}s\n"
                                     f"page console:\n{self.console()}")
            time.sleep(0.05)

    def navigate(self, url: str, timeout: float = 15) -> None:
        """Load ``url`` and wait until its document is complete."""
        self.send("Page.navigate", {"url": url})
        base = url.split("#")[0]
        self.wait_for(f"location.href.split('#')[0] === {json.dumps(base)} && document.readyState === 'complete'",
                      timeout, f"loading {url}")

    def screenshot(self, path: Path) -> Path:
        """Save a PNG of the page as it is now."""
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def console(self) -> str:
        """Console messages, uncaught exceptions and log entries seen so far, one per line."""
        lines = []
        for event in self.events:
            params = event.get("params", {})
            if event["method"] == "Runtime.consoleAPICalled":
                args = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
                lines.append(f"console.{params.get('type')}: {args}")
            elif event["method"] == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                lines.append(f"exception: {details.get('exception', {}).get('description') or details.get('text')}")
            elif event["method"] == "Log.entryAdded":
                entry = params.get("entry", {})
                lines.append(f"log.{entry.get('level')}: {entry.get('text')} {entry.get('url', '')}")
        return "\n".join(lines) or "(nothing)"


class Chromium:
    """A headless Chromium process and its browser-level DevTools session."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.process: subprocess.Popen | None = None
        self.browser: Session | None = None
        self.pages: list[Page] = []
        self.log_path = workdir / "chromium.log"

    def start(self, timeout: float = 30) -> Chromium:
        profile = self.workdir / "profile"
        profile.mkdir(parents=True, exist_ok=True)
        argv = [self.binary, "--headless=new", "--no-sandbox", "--remote-debugging-port=0",
                f"--user-data-dir={profile}", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--metrics-recording-only", "--mute-audio",
                "about:blank"]
        with open(self.log_path, "ab") as log:
            self.process = processes.spawn(argv, log=log)
        url = None

        def listening() -> bool:
            nonlocal url
            found = _LISTENING.search(self.log_path.read_text(errors="replace"))
            url = found.group(1) if found else None
            return url is not None

        try:
            processes.wait_until(listening, timeout, "chromium's DevTools endpoint", self.process, interval=0.1)
        except (RuntimeError, TimeoutError) as exc:
            log = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{exc}\n--- chromium log ---\n{log}") from None
        self.browser = Session(url)
        self.endpoint = urlparse(url).netloc
        return self

    def new_page(self, url: str) -> Page:
        """A new tab, loaded with ``url``."""
        target_id = self.browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        page = Page(f"ws://{self.endpoint}/devtools/page/{target_id}", target_id)
        self.pages.append(page)
        page.navigate(url)
        return page

    def close_page(self, page: Page) -> None:
        page.close()
        self.pages.remove(page)
        self.browser.send("Target.closeTarget", {"targetId": page.target_id})

    def stop(self) -> None:
        """Close the sessions and stop Chromium by PID."""
        for page in list(self.pages):
            try:
                page.close()
            except Exception:
                pass
        self.pages.clear()
        if self.browser is not None:
            try:
                self.browser.close()
            except Exception:
                pass
        if self.process is not None:
            processes.stop(self.process)
