"""Gateway-level hooks: checks and transformations every call needs (quotas, audit).

Register them on the extension, or name them in ``GENAPI_BEFORE_EXECUTE`` /
``GENAPI_AFTER_EXECUTE`` (comma-separated ``module:function``) for ``genapi gateway``::

    gateway = Gateway(app)

    @gateway.before_execute
    def quota(request_info, args):
        if over_quota(request_info["user_id"]):
            raise GenApiError("Quota exceeded")   # -> hook rejected: "Quota exceeded"

    @gateway.after_execute
    def audit(request_info, result):
        record(request_info, result)
        return result                             # what the client gets

The contract is the function-level hooks' (:mod:`workers.hooks`), bounded by
``GENAPI_HOOK_TIMEOUT_MS``. Before hooks run in the gateway after argument validation and
before the call is dispatched; a dict they return replaces the arguments the worker gets.
After hooks run on successful sync and async results before the client gets them (not on
stream chunks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workers import hooks

from . import errors


class GatewayHooks:
    """The gateway's before and after hooks, in registration order."""

    def __init__(self, timeout_ms: int) -> None:
        self.timeout_ms = timeout_ms
        self.before: list[Callable] = []
        self.after: list[Callable] = []

    def load(self, before: tuple[str, ...] = (), after: tuple[str, ...] = ()) -> None:
        """Add the hooks named ``module:function`` (``GENAPI_BEFORE_EXECUTE`` / ``…AFTER…``)."""
        self.before.extend(hooks.load(path) for path in before)
        self.after.extend(hooks.load(path) for path in after)

    def run_before(self, info: dict, args: dict) -> dict:
        """The arguments after every before hook, or ``Rejected`` (``hook rejected: …``)."""
        for hook in self.before:
            try:
                args = hooks.before((hook, ()), info, args, self.timeout_ms, _name(hook))
            except hooks.Rejection as rejection:
                raise errors.hook_rejected(str(rejection)) from None
        return args

    def run_after(self, info: dict, result: Any) -> Any:
        for hook in self.after:
            result = hooks.after((hook, ()), info, result, self.timeout_ms, _name(hook))
        return result


def _name(hook: Callable) -> str:
    return f"gateway hook {getattr(hook, '__module__', '?')}:{getattr(hook, '__qualname__', hook)}"
