"""``check_permission`` modes (reference §5.2), evaluated in the gateway against the session.

A function with a ``permission_callback`` is not checked here: the callback takes
precedence over ``check_permission`` entirely and runs on the worker, before the function
(:mod:`workers.hooks`), where the service's own code and data live.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workers.funconfig import FunConfig

from .auth import Identity


def allowed(config: FunConfig, identity: Identity | None, args: Mapping[str, Any] | None) -> bool:
    """May this caller run this function with these arguments?

    With ``args=None`` (listing functions) an ``{"arg": name}`` rule is assumed satisfiable
    by any authenticated caller.
    """
    if config.permission_callback is not None:
        # decided by the callback, on the worker; a listing shows it to signed-in callers
        return args is not None or identity is not None
    mode = config.check_permission
    if mode is False:
        return True
    user_id = identity.user_id if identity is not None else None
    if not isinstance(user_id, str) or not user_id:
        return False
    if mode == "any_authenticated":
        return True
    if "role" in mode:
        return bool(set(mode["role"]) & set(identity.roles))
    if args is None:
        return True
    value = arg_value(args, mode["arg"], config.arg_orders == "map")
    return type(value) is str and value == user_id


def arg_value(args: Mapping[str, Any], name: str, nested: bool) -> Any:
    """The value an ``{"arg": name}`` rule compares: ``args[name]``; for a ``"map"``-ordered
    function, if that is missing or falsy, the ``name`` of the first top-level object (keys
    in sorted order, as the original iterates small maps) that has one, even if it then
    mismatches. Nothing deeper is searched."""
    value = args.get(name)
    if value or not nested:
        return value
    for key in sorted(args):
        inner = args[key]
        if isinstance(inner, Mapping) and name in inner:
            return inner[name]
    return value
