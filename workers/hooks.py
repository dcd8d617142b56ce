"""Hooks and permission callbacks: loading them, and running them within a time bound.

Both sides use this module: the worker runs a function's ``before_execute``,
``permission_callback`` and ``after_execute`` around it; the gateway runs its own
gateway-level hooks with the same contract. A hook that runs past its bound is abandoned,
not killed (Python cannot stop a thread): keep hooks short and make them honour timeouts
of their own when they do I/O.

The contract (reference §8 with PRODUCT.md's fixes):

* ``before_execute(request_info, args, *extra)`` returns a dict (the new arguments),
  ``None``/``True`` (keep them), or ``False`` (reject); raising rejects too. Any rejection
  reaches the client as ``hook rejected: <reason>``.
* ``after_execute(request_info, result, *extra)`` returns the result the client gets; if it
  raises or runs too long the original result stands.
* ``permission_callback(request_info, args)`` allows only by returning exactly ``True``.
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from . import signals
from .errors import GenApiError

log = logging.getLogger("genapi.hooks")

#: the client's message when a before hook refuses a call
HOOK_REJECTED = "hook rejected: "


class HookTimeout(Exception):
    """The hook did not return within its bound."""

    def __init__(self, timeout_ms: int) -> None:
        super().__init__(f"hook timed out after {timeout_ms}ms")


class Rejection(Exception):
    """A before hook refused the call; ``str()`` is the client's whole error message."""


def load(path: str) -> Callable:
    """The callable named ``module:function`` (dots allowed after the colon)."""
    module_name, _, attr = path.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{path} is not callable")
    return target


def resolve(spec: Any) -> tuple[Callable, tuple] | None:
    """A FunConfig hook value (``None``, a callable, ``"m:f"`` or ``{"callable", "args"}``)
    as ``(function, extra_args)``."""
    if spec is None:
        return None
    if callable(spec):
        return spec, ()
    if isinstance(spec, str):
        return load(spec), ()
    target = spec["callable"]
    return (target if callable(target) else load(target)), tuple(spec.get("args") or ())


def run_bounded(func: Callable, args: tuple, timeout_ms: int) -> Any:
    """``func(*args)``, raising :class:`HookTimeout` if it takes longer than ``timeout_ms``.

    The hook runs on a helper thread (a greenlet under gevent) so the caller can stop
    waiting; its exception, if any, is re-raised here.
    """
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["value"] = func(*args)
        except BaseException as exc:  # handed back to the caller below
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name="genapi-hook", daemon=True).start()
    if not done.wait(timeout_ms / 1000):
        raise HookTimeout(timeout_ms)
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, GenApiError | HookTimeout):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def rejected(reason: str) -> Rejection:
    """The client's ``hook rejected: "<reason>"`` (the reason JSON-quoted, as the original
    renders an inspected string)."""
    return Rejection(HOOK_REJECTED + json.dumps(reason, ensure_ascii=False))


def _observed(kind: str, func: Callable, args: tuple, timeout_ms: int) -> Any:
    """``run_bounded`` between the ``hook.<kind>.start`` and ``.stop``/``.exception`` events."""
    start, stop, failed = (signals.HOOK_EVENTS[kind, "start"], signals.HOOK_EVENTS[kind, "stop"],
                           signals.HOOK_EVENTS[kind, "exception"])
    if not (start.receivers or stop.receivers or failed.receivers):
        return run_bounded(func, args, timeout_ms)
    where = {"module": getattr(func, "__module__", None), "function": getattr(func, "__qualname__", repr(func)),
             "type": kind}
    began = time.monotonic()
    signals.emit(start, func, system_time=time.time_ns(), **where)
    try:
        value = run_bounded(func, args, timeout_ms)
    except Exception as exc:
        signals.emit(failed, func, duration=time.monotonic() - began, **where,
                     kind="timeout" if isinstance(exc, HookTimeout) else "error", reason=_reason(exc), stacktrace=None)
        raise
    signals.emit(stop, func, duration=time.monotonic() - began, **where)
    return value


def before(hook: tuple[Callable, tuple], info: dict, args: dict, timeout_ms: int, name: str = "") -> dict:
    """Run a before hook: the arguments to go on with, or :class:`Rejection`."""
    func, extra = hook
    try:
        outcome = _observed("before", func, (info, args, *extra), timeout_ms)
    except Exception as exc:
        if not isinstance(exc, GenApiError):
            log.warning("before_execute hook of %s failed: %s", name or "a call", _reason(exc))
        raise rejected(_reason(exc)) from None
    if outcome is None or outcome is True:
        return args
    if outcome is False:
        raise rejected("rejected")
    if isinstance(outcome, dict):
        return outcome
    log.warning("before_execute hook of %s returned %s, not a dict, None or False; arguments unchanged",
                name or "a call", type(outcome).__name__)
    return args


def after(hook: tuple[Callable, tuple], info: dict, result: Any, timeout_ms: int, name: str = "") -> Any:
    """Run an after hook: its return value, or the original result if it failed."""
    func, extra = hook
    try:
        return _observed("after", func, (info, result, *extra), timeout_ms)
    except Exception as exc:
        log.warning("after_execute hook of %s failed (%s); the original result is sent", name or "a call",
                    _reason(exc))
        return result


def permitted(callback: Callable, info: dict, args: dict, timeout_ms: int, name: str = "") -> bool:
    """Run a permission callback: allowed only when it returns exactly ``True``."""
    try:
        verdict = run_bounded(callback, (info, args), timeout_ms)
    except Exception as exc:
        log.warning("permission_callback of %s failed (%s): denied", name or "a call", _reason(exc))
        return False
    if verdict is not True:
        log.info("permission_callback of %s returned %r: denied (only True allows)", name or "a call", verdict)
    return verdict is True
