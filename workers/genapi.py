"""``GenApi``: declare the functions of a service with ``@api.function(...)``."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from marshmallow import ValidationError

from . import pushconfig, typehints
from .allowlist import config_callables, hard_denial
from .errors import FunConfigError
from .funconfig import FunConfig, check_service_name, load_funconfig

_OPTIONS = (
    "version", "arg_types", "arg_orders", "response_type", "timeout", "choose_node_mode",
    "check_permission", "permission_callback", "retry", "before_execute", "after_execute",
    "hook_timeout", "request_info", "disabled", "sensitive", "description",
)


@dataclass(frozen=True)
class Function:
    """A registered function: its validated config and the Python callable."""

    config: FunConfig
    func: Callable[..., Any]


class GenApi:
    """A service: a named group of functions that one or more workers serve.

    >>> api = GenApi("user_service")
    >>> @api.function("get_user", arg_types={"user_id": "string"}, version="1.0.0")
    ... def get_user(user_id):
    ...     return {"id": user_id}

    Every instance is remembered, so ``genapi worker module`` finds the services a module
    defines by importing it. Several services per module are fine.
    """

    _instances: list[GenApi] = []

    def __init__(self, service: str, *, config_version: str | None = None, push: bool = True) -> None:
        """``config_version`` names this set of configs for the gateways (default: a stable
        hash of them, so unchanged code is not re-registered). ``push=False`` makes a
        pull-only service: its workers never push, a gateway in pull mode asks them."""
        try:
            check_service_name(service)
        except ValidationError as exc:
            raise FunConfigError(" ".join(exc.messages)) from None
        if config_version is not None and (not isinstance(config_version, str) or not config_version.strip()):
            raise FunConfigError(f"{service}: config_version must be a non-empty string, got {config_version!r}")
        self.service = service
        self.push = push
        self._config_version = config_version
        self._functions: dict[tuple[str, str | None], Function] = {}
        GenApi._instances.append(self)

    def __repr__(self) -> str:
        return f"GenApi({self.service!r}, functions={len(self._functions)})"

    @property
    def config_version(self) -> str:
        """The version given to the constructor, else a hash of the registered configs."""
        return self._config_version or pushconfig.config_version(f.config for f in self)

    def configs(self) -> list[FunConfig]:
        """The FunConfigs of every registered function."""
        return [f.config for f in self]

    def __iter__(self) -> Iterator[Function]:
        return iter(self._functions.values())

    def __len__(self) -> int:
        return len(self._functions)

    @classmethod
    def instances(cls) -> list[GenApi]:
        """Every GenApi created in this process, in creation order."""
        return list(cls._instances)

    def function(self, request_type: str | Callable | None = None, /, **options: Any):
        """Register the decorated function; every FunConfig field is a keyword.

        ``request_type`` defaults to the function's name. ``arg_orders`` may be left out when
        the function's parameters name the declared arguments: their order is used. Without
        ``arg_types``, the arguments come from the parameters' type hints and defaults
        (:mod:`workers.typehints`). ``description`` defaults to the docstring's first
        paragraph. The config is validated now, so a mistake fails at import with a message
        naming the field. The function itself is returned unchanged (still callable directly
        in tests).
        """
        if callable(request_type):  # bare @api.function
            return self.function()(request_type)
        if "request_type" in options:
            if request_type is not None:
                raise FunConfigError(f"{self.service}: request_type given twice")
            request_type = options.pop("request_type")

        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise FunConfigError(
                f"{self.service}: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                f"(allowed: {', '.join(_OPTIONS)})")

        def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
            name = request_type or func.__name__
            data = {"service": self.service, "request_type": name, **_json_shaped(options)}
            hinted = "arg_types" not in options
            if hinted:
                data["arg_types"] = typehints.derive(func, f"{self.service}.{name}",
                                                     request_info=options.get("request_info") is True)
            if "arg_orders" not in options:
                data["arg_orders"] = list(data["arg_types"]) if hinted else \
                    _orders_from_signature(func, options.get("arg_types"))
            if "description" not in options:
                data["description"] = first_paragraph(func.__doc__)
            config = load_funconfig(data)
            if hinted:  # the function gets uuid.UUID objects, as its hints say
                config = replace(config, arg_types={n: replace(s, native=True) for n, s in config.arg_types.items()})
            refusal = hard_denial(config.service, config_callables(config))
            if refusal:
                raise FunConfigError(f"{config.task_name}: {refusal}")
            _check_callable(func, config)
            if (config.request_type, config.version) in self._functions:
                raise FunConfigError(
                    f"{self.service}.{config.request_type} version {config.version or '(none)'} "
                    "is registered twice")
            self._functions[(config.request_type, config.version)] = Function(config, func)
            func.genapi_config = config
            return func

        return decorate


def callable_path(obj: Any) -> str:
    """``module:qualname`` of a top-level callable, so another process can import it."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", "")
    if not module or not qualname or "<" in qualname:
        raise FunConfigError(f"{obj!r} cannot be referenced by name: use a module-level function")
    return f"{module}:{qualname}"


def _json_shaped(options: dict) -> dict:
    """Callables become ``module:function`` strings; hooks become ``{callable, args}``."""
    out = dict(options)
    for name in ("permission_callback", "choose_node_mode"):
        if callable(out.get(name)):
            out[name] = callable_path(out[name])
    for hook in ("before_execute", "after_execute"):
        value = out.get(hook)
        if callable(value):
            value = callable_path(value)
        if isinstance(value, str):
            value = {"callable": value, "args": []}
        if isinstance(value, dict) and callable(value.get("callable")):
            value = {**value, "callable": callable_path(value["callable"])}
        if hook in out:
            out[hook] = value
    return out


def first_paragraph(docstring: str | None) -> str | None:
    """The first paragraph of a docstring, its lines joined with spaces (``None`` if empty)."""
    text = inspect.cleandoc(docstring or "").strip()
    if not text:
        return None
    return " ".join(line.strip() for line in re.split(r"\n\s*\n", text, maxsplit=1)[0].splitlines())


def _orders_from_signature(func: Callable, arg_types: Any) -> Any:
    """The declared arguments in the order the function's parameters list them."""
    if not isinstance(arg_types, dict) or len(arg_types) < 2:
        return None
    params = [p for p in inspect.signature(func).parameters if p in arg_types]
    return params if len(params) == len(arg_types) else None


def _check_callable(func: Callable, config: FunConfig) -> None:
    """Fail at import if the function cannot take the arguments it will be called with."""
    if config.response_type == "stream" and not inspect.isgeneratorfunction(func) and not config.request_info:
        raise FunConfigError(f"{config.task_name}: a response_type='stream' function must be a generator "
                             "(use yield for each chunk), or take request_info=True and send through "
                             "request_info['stream']")
    count = 0 if not config.arg_types else 1 if config.arg_orders == "map" else len(config.arg_orders)
    extra = {"request_info": {}} if config.request_info else {}
    try:
        inspect.signature(func).bind(*([None] * count), **extra)
    except TypeError as exc:
        shape = f"{count} positional argument{'s' if count != 1 else ''}"
        if extra:
            shape += " and request_info="
        raise FunConfigError(f"{config.task_name}: the function cannot be called with {shape} ({exc})") from None
