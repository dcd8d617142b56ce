"""``check_permission`` modes (reference §5.2), evaluated against the session identity.

``permission_callback`` is not evaluated by this version of the gateway: a function that
declares one is denied (fail closed) rather than silently allowed.
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
        return False
    mode = config.check_permission
    if mode is False:
        return True
    if identity is None:
        return False
    if mode == "any_authenticated":
        return True
    if "role" in mode:
        return bool(set(mode["role"]) & set(identity.roles))
    if args is None:
        return True
    return args.get(mode["arg"]) == identity.user_id
