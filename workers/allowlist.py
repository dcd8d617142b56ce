"""What may be registered: the hard denylist and ``GENAPI_REGISTRATION_ALLOWLIST``.

The original checks every module/function/args triple it registers against an allowlist
and a denylist that nothing can override (reference §13.3). Here the same two gates apply
to a FunConfig's service, its function name and every callable it names (permission
callback, hooks, a node selector):

* **Always refused**, allowlist or not: the gateway's built-in services (``gateway``,
  ``relay``), Celery's own ``celery.*`` task names, callables in modules that run
  commands, load code or touch the process (``os``, ``subprocess``, ``sys``, …), and
  callables reached through a private attribute (``tempfile:_os.system``).
* **The allowlist**, when set, is a JSON object with up to three lists::

      {"services": ["billing"], "functions": ["ops.restart"], "callables": ["myapp.hooks", "myapp.auth:can_edit"]}

  With ``services`` or ``functions`` given, a function registers only if its service is in
  ``services`` or ``service.request_type`` is in ``functions``. With ``callables`` given,
  every callable a config names must be in a listed module (``"pkg.mod"``) or be listed
  exactly (``"pkg.mod:func"``). A missing list does not restrict; an empty one refuses all.
  A flat list (``billing,ops.restart,myapp.hooks`` or a JSON array) is all three lists at
  once, like the original's MFA allowlist: each entry allows what it names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .protocol import RESERVED_SERVICES

#: Top-level modules no registered callable may live in (after stripping leading ``_``,
#: so ``_pickle``, ``_socket`` and ``_ctypes`` count too). ``posix``/``nt`` are where
#: ``os.system`` and friends really live.
DENIED_MODULES = frozenset({
    "os", "posix", "nt", "subprocess", "posixsubprocess", "sys", "builtins", "importlib", "imp",
    "frozen_importlib", "frozen_importlib_external", "runpy", "pty", "shutil", "pickle", "marshal", "ctypes",
    "socket",
})

#: one entry of a flat allowlist: a service, ``service.request_type``, a module or ``module:function``
_ENTRY = re.compile(r"[A-Za-z0-9_][\w.\-]*(:[A-Za-z_][\w.]*)?")

#: Services refused everywhere: the built-ins, and ``celery`` (its task names are Celery's own).
DENIED_SERVICES = RESERVED_SERVICES | {"celery"}


def config_callables(config: Any) -> list[str]:
    """Every ``module:function`` a FunConfig (object or JSON dict) names."""
    get = config.get if isinstance(config, dict) else lambda name: getattr(config, name, None)
    found = []
    if isinstance(get("permission_callback"), str):
        found.append(get("permission_callback"))
    for hook in ("before_execute", "after_execute"):
        value = get(hook)
        if isinstance(value, dict) and isinstance(value.get("callable"), str):
            found.append(value["callable"])
    mode = get("choose_node_mode")
    if isinstance(mode, str) and ":" in mode:
        found.append(mode)
    return found


def _module_of(path: str) -> str:
    return path.partition(":")[0]


def denied_callable(path: str) -> bool:
    """Is ``module:function`` in a module that is always refused?"""
    top = _module_of(path).split(".")[0].lstrip("_")
    return top in DENIED_MODULES


def private_attribute(path: str) -> bool:
    """Does ``module:a.b`` go through a private or dunder name (``tempfile:_os.system``,
    ``x:__builtins__.eval``)? Such paths reach other modules' internals: always refused."""
    return any(part.startswith("_") for part in path.partition(":")[2].split("."))


def hard_denial(service: str, callables: Iterable[str]) -> str | None:
    """Why the denylist refuses this config, or ``None``."""
    if service in DENIED_SERVICES or str(service).startswith("celery."):
        return f"service {service!r} is reserved and can never be registered"
    callables = list(callables)
    blocked = [path for path in callables if denied_callable(path)]
    if blocked:
        return f"callable {', '.join(blocked)} is in a module that can never be registered"
    private = [path for path in callables if private_attribute(path)]
    if private:
        return f"callable {', '.join(private)} names a private attribute and can never be registered"
    return None


@dataclass(frozen=True)
class Allowlist:
    """``GENAPI_REGISTRATION_ALLOWLIST`` parsed; ``None`` fields do not restrict."""

    services: frozenset[str] | None = None
    functions: frozenset[str] | None = None
    callables: frozenset[str] | None = None

    @classmethod
    def parse(cls, raw: str) -> Allowlist:
        """Parse the JSON object form, or a flat list (comma-separated or a JSON array) whose
        entries may each name a service, a ``service.request_type`` or a callable's module
        or ``module:function``. Raise ``ValueError`` with a readable message."""
        text = raw.strip()
        if not text.startswith("{"):
            if text.startswith("["):
                try:
                    entries = json.loads(text)
                except ValueError:
                    entries = None
            else:
                entries = [entry.strip() for entry in text.split(",") if entry.strip()]
            if not isinstance(entries, list) or not all(isinstance(e, str) and _ENTRY.fullmatch(e) for e in entries):
                raise ValueError(f"must be a JSON object, or a list of names (services, service.function, "
                                 f"module or module:function), got {raw.strip()!r}")
            names = frozenset(entries)
            return cls(services=names, functions=names, callables=names)
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"must be a JSON object such as {{\"services\": [\"billing\"]}} ({exc})") from None
        unknown = sorted(set(data) - {"services", "functions", "callables"})
        if unknown:
            raise ValueError(f"unknown key {', '.join(unknown)} (allowed: services, functions, callables)")
        lists = {}
        for key, value in data.items():
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ValueError(f"{key!r} must be a list of non-empty strings")
            lists[key] = frozenset(value)
        return cls(**lists)

    def refusal(self, service: str, request_type: str, callables: Iterable[str]) -> str | None:
        """Why the allowlist refuses this config, or ``None``."""
        if self.services is not None or self.functions is not None:
            if service not in (self.services or ()) and f"{service}.{request_type}" not in (self.functions or ()):
                return f"function {service}.{request_type} is not in GENAPI_REGISTRATION_ALLOWLIST"
        if self.callables is not None:
            refused = [p for p in callables if p not in self.callables and _module_of(p) not in self.callables]
            if refused:
                return f"callable {', '.join(refused)} is not in GENAPI_REGISTRATION_ALLOWLIST"
        return None

    def to_json(self) -> dict:
        return {key: sorted(value) for key, value in
                (("services", self.services), ("functions", self.functions), ("callables", self.callables))
                if value is not None}


def registration_refusal(config: Any, allowlist: Allowlist | None) -> str | None:
    """Why a FunConfig (object or JSON dict) may not be registered, or ``None``."""
    get = config.get if isinstance(config, dict) else lambda name: getattr(config, name, None)
    service, request_type = str(get("service")), str(get("request_type"))
    callables = config_callables(config)
    reason = hard_denial(service, callables)
    if reason is None and allowlist is not None:
        reason = allowlist.refusal(service, request_type, callables)
    return reason
