"""The service of the permission and hook tests (``genapi worker tests.services.policies``).

Permission callbacks and hooks are module-level functions of this module, referenced as
``tests.services.policies:name``. The gateway-level hooks (``gateway_before``,
``gateway_after``) are loaded by a gateway started with ``GENAPI_BEFORE_EXECUTE`` /
``GENAPI_AFTER_EXECUTE``. Functions and hooks leave marks in Redis (``GENAPI_REDIS_URL``)
so tests can see where and how often they ran.
"""

from __future__ import annotations

import os
import time

from tests.services.marks import marks
from workers import GenApi, GenApiError

api = GenApi("policies")

HOOK = "tests.services.policies:"
SLOW_HOOK_S = 2.0  # every "slow" hook or callback sleeps this long...
SHORT_HOOK_MS = 300  # ...against this hook_timeout



def _count(key: str | None) -> None:
    if key:
        marks().incr(key)
        marks().expire(key, 120)


# =================================================================== check_permission


@api.function("open", check_permission=False)
def open_():
    return "open"


@api.function("members", check_permission="any_authenticated")
def members():
    return "members"


@api.function("owned", arg_types={"user_id": {"type": "any", "allow_nil": True}, "note": "string"},
              arg_orders=["user_id", "note"], check_permission={"arg": "user_id"})
def owned(user_id, note):
    return {"user_id": user_id, "note": note}


@api.function("owned_map", arg_types={"user_id": {"type": "any", "allow_nil": True},
                                      "a": {"type": "map", "allow_nil": True},
                                      "b": {"type": "map", "allow_nil": True}},
              arg_orders="map", check_permission={"arg": "user_id"})
def owned_map(args):
    return args


@api.function("admins", check_permission={"role": ["admin"]})
def admins():
    return "admins"


@api.function("ops_or_admins", check_permission={"role": ["ops", "admin"]})
def ops_or_admins():
    return "ops or admins"


@api.function("nobody", check_permission={"role": []})
def nobody():
    return "nobody"


# ================================================================ permission_callback


def allow(request_info, args):
    """Allows; records the process it ran in (the worker, not the gateway)."""
    if args.get("mark"):
        marks().set(f"{args['mark']}:callback_pid", os.getpid(), ex=120)
    return True


def deny(request_info, args):
    _count(args.get("mark") and f"{args['mark']}:callback_calls")
    return False


def truthy_one(request_info, args):
    return 1


def truthy_yes(request_info, args):
    return "yes"


def callback_raises(request_info, args):
    raise RuntimeError("callback exploded")


def callback_sleeps(request_info, args):
    time.sleep(SLOW_HOOK_S)
    return True


def owner_is_caller(request_info, args):
    """Allows when the (possibly hook-rewritten) ``owner`` argument is the session's user."""
    return args.get("owner") == request_info.get("user_id")


def admin_in_session(request_info, args):
    return "admin" in (request_info.get("roles") or [])


def _ran(mark):
    _count(mark and f"{mark}:ran")


MARK = {"mark": {"type": "string", "allow_nil": True}}


@api.function("cb_true", arg_types=MARK, permission_callback=HOOK + "allow")
def cb_true(mark):
    _ran(mark)
    return "allowed"


@api.function("cb_false", arg_types=MARK, permission_callback=HOOK + "deny", retry={"all_nodes": 2})
def cb_false(mark):
    _ran(mark)
    return "should not run"


@api.function("cb_one", arg_types=MARK, permission_callback=HOOK + "truthy_one")
def cb_one(mark):
    _ran(mark)
    return "should not run"


@api.function("cb_yes", arg_types=MARK, permission_callback=HOOK + "truthy_yes")
def cb_yes(mark):
    _ran(mark)
    return "should not run"


@api.function("cb_raises", arg_types=MARK, permission_callback=HOOK + "callback_raises")
def cb_raises(mark):
    _ran(mark)
    return "should not run"


@api.function("cb_slow", arg_types=MARK, permission_callback=HOOK + "callback_sleeps", hook_timeout=SHORT_HOOK_MS)
def cb_slow(mark):
    _ran(mark)
    return "should not run"


@api.function("cb_over_role", check_permission={"role": ["admin"]}, permission_callback=HOOK + "allow")
def cb_over_role():
    """The callback allows everyone: the gateway must not apply the role rule as well."""
    return "callback wins"


@api.function("cb_session_admin", permission_callback=HOOK + "admin_in_session")
def cb_session_admin():
    return "session admin"


@api.function("cb_async", arg_types=MARK, response_type="async", permission_callback=HOOK + "deny")
def cb_async(mark):
    _ran(mark)
    return "should not run"


def stamp_owner(request_info, args):
    """A before hook: the caller owns what it creates."""
    return {**args, "owner": request_info["user_id"]}


@api.function("cb_after_before", arg_types={"owner": {"type": "string", "allow_nil": True}},
              before_execute=HOOK + "stamp_owner", permission_callback=HOOK + "owner_is_caller")
def cb_after_before(owner):
    return {"owner": owner}


# ============================================================================ hooks


def double_n(request_info, args):
    return {**args, "n": args["n"] * 2}


def add_offset(request_info, args, offset, label):
    """A hook with extra args from ``{"callable": ..., "args": [offset, label]}``."""
    return {**args, "n": args["n"] + offset, "label": label}


def quota_exceeded(request_info, args):
    _count(args.get("mark") and f"{args['mark']}:hook_calls")
    raise GenApiError("Quota exceeded")


def hook_crashes(request_info, args):
    raise ValueError("boom")


def hook_says_no(request_info, args):
    return False


def hook_keeps(request_info, args):
    return None


def hook_says_yes(request_info, args):
    return True


def hook_sleeps(request_info, args):
    time.sleep(SLOW_HOOK_S)
    return {**args, "n": -1}


def show_info(request_info, args):
    """Hands the request info the hook saw to the function."""
    return {**args, "info": request_info}


def wrap_result(request_info, result):
    return {"wrapped": result, "by": request_info.get("request_type")}


def tag_result(request_info, result, tag):
    return {"result": result, "tag": tag}


def after_crashes(request_info, result):
    raise ValueError("after boom")


def after_sleeps(request_info, result):
    time.sleep(SLOW_HOOK_S)
    return "too late"


N = {"n": "num"}
N_MARK = {"n": "num", "mark": {"type": "string", "allow_nil": True}}


@api.function("rewritten", arg_types=N, before_execute=HOOK + "double_n")
def rewritten(n):
    return {"n": n}


@api.function("offset", arg_types={"n": "num", "label": {"type": "string", "allow_nil": True}},
              arg_orders="map",
              before_execute={"callable": HOOK + "add_offset", "args": [100, "extra"]})
def offset(args):
    return args


@api.function("quota", arg_types=N_MARK, before_execute=HOOK + "quota_exceeded", retry={"all_nodes": 2})
def quota(n, mark):
    _ran(mark)
    return "should not run"


@api.function("crashy", arg_types=N_MARK, before_execute=HOOK + "hook_crashes")
def crashy(n, mark):
    _ran(mark)
    return "should not run"


@api.function("refused", arg_types=N_MARK, before_execute=HOOK + "hook_says_no")
def refused(n, mark):
    _ran(mark)
    return "should not run"


@api.function("kept", arg_types=N, before_execute=HOOK + "hook_keeps")
def kept(n):
    return {"n": n}


@api.function("kept_true", arg_types=N, before_execute=HOOK + "hook_says_yes")
def kept_true(n):
    return {"n": n}


@api.function("slow_before", arg_types=N_MARK, before_execute=HOOK + "hook_sleeps", hook_timeout=SHORT_HOOK_MS)
def slow_before(n, mark):
    _ran(mark)
    return {"n": n}


@api.function("info_seen", arg_types={"n": "num", "info": {"type": "map", "allow_nil": True}}, arg_orders="map",
              before_execute=HOOK + "show_info", version="1.2.3")
def info_seen(args):
    return args["info"]


@api.function("after_wrapped", arg_types=N, after_execute=HOOK + "wrap_result")
def after_wrapped(n):
    return {"value": n}


@api.function("after_tagged", arg_types=N, after_execute={"callable": HOOK + "tag_result", "args": ["tag-x"]})
def after_tagged(n):
    return n + 1


@api.function("after_crashy", arg_types=N, after_execute=HOOK + "after_crashes")
def after_crashy(n):
    return {"original": n}


@api.function("after_slow", arg_types=N, after_execute=HOOK + "after_sleeps", hook_timeout=SHORT_HOOK_MS)
def after_slow(n):
    return {"original": n}


@api.function("after_on_error", after_execute=HOOK + "wrap_result")
def after_on_error():
    raise GenApiError("function failed")


@api.function("both", arg_types=N, before_execute=HOOK + "double_n", after_execute=HOOK + "wrap_result")
def both(n):
    return {"n": n}


@api.function("async_both", arg_types=N, response_type="async",
              before_execute=HOOK + "double_n", after_execute=HOOK + "wrap_result")
def async_both(n):
    return {"n": n}


@api.function("async_quota", arg_types=N_MARK, response_type="async", before_execute=HOOK + "quota_exceeded")
def async_quota(n, mark):
    _ran(mark)
    return "should not run"


@api.function("stream_both", arg_types=N, response_type="stream",
              before_execute=HOOK + "double_n", after_execute=HOOK + "wrap_result")
def stream_both(n):
    yield from range(int(n))


@api.function("plain", arg_types=N)
def plain(n):
    return {"n": n}


# ============================================================ gateway-level hooks


def gateway_before(request_info, args):
    """Loaded by a gateway with ``GENAPI_BEFORE_EXECUTE``: refuses ``blocked: true``;
    doubles ``n`` when ``gw_double: true``; sleeps when ``gw_sleep: true``; otherwise
    leaves the arguments alone."""
    if args.get("blocked") is True:
        raise GenApiError("blocked by gateway")
    if args.get("gw_sleep") is True:
        time.sleep(SLOW_HOOK_S)
    if args.get("gw_double") is True:
        return {**args, "n": args["n"] * 2}
    return None


def gateway_after(request_info, result):
    """Loaded by a gateway with ``GENAPI_AFTER_EXECUTE``: marks dict results as audited."""
    if isinstance(result, dict):
        return {"audited": True, **result}
    return result


GW_ARGS = {"n": {"type": "num", "allow_nil": True}, "blocked": {"type": "boolean", "allow_nil": True},
           "gw_double": {"type": "boolean", "allow_nil": True}, "gw_sleep": {"type": "boolean", "allow_nil": True},
           "mark": {"type": "string", "allow_nil": True}}


@api.function("gw_echo", arg_types=GW_ARGS, arg_orders="map")
def gw_echo(args):
    _ran(args.get("mark"))
    return {"n": args["n"]}


@api.function("gw_async", arg_types=GW_ARGS, arg_orders="map", response_type="async")
def gw_async(args):
    _ran(args.get("mark"))
    return {"n": args["n"]}


@api.function("gw_scalar")
def gw_scalar():
    return 7


@api.function("gw_fail")
def gw_fail():
    raise GenApiError("gw function failed")
