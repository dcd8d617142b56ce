"""gateway_app.permissions.allowed: every check_permission mode."""

from __future__ import annotations

import pytest

from gateway_app.auth import Identity
from gateway_app.permissions import allowed
from workers.funconfig import FunConfig

ALICE = Identity("alice", ("user", "editor"))
ADMIN = Identity("root", ("admin",))
NOBODY = Identity("nobody", ())


def cfg(check_permission=False, permission_callback=None):
    return FunConfig(service="svc", request_type="rt", check_permission=check_permission,
                     permission_callback=permission_callback)


@pytest.mark.parametrize("identity", [None, ALICE, NOBODY])
@pytest.mark.parametrize("args", [None, {}, {"x": 1}])
def test_false_allows_everyone(identity, args):
    assert allowed(cfg(False), identity, args) is True


@pytest.mark.parametrize(
    "mode", ["any_authenticated", {"role": ["admin"]}, {"role": []}, {"arg": "user_id"}])
@pytest.mark.parametrize("args", [None, {}, {"user_id": None}])
def test_anonymous_denied_in_every_other_mode(mode, args):
    assert allowed(cfg(mode), None, args) is False


def test_any_authenticated():
    assert allowed(cfg("any_authenticated"), ALICE, {}) is True
    assert allowed(cfg("any_authenticated"), NOBODY, None) is True


def test_role():
    mode = {"role": ["admin", "editor"]}
    assert allowed(cfg(mode), ALICE, {}) is True
    assert allowed(cfg(mode), ADMIN, None) is True
    assert allowed(cfg(mode), NOBODY, {}) is False
    assert allowed(cfg({"role": ["admin"]}), ALICE, {}) is False


def test_empty_role_list_denies_everybody():
    assert allowed(cfg({"role": []}), ADMIN, {}) is False


def test_arg_must_equal_user_id():
    mode = {"arg": "user_id"}
    assert allowed(cfg(mode), ALICE, {"user_id": "alice"}) is True
    assert allowed(cfg(mode), ALICE, {"user_id": "bob"}) is False
    assert allowed(cfg(mode), ALICE, {"user_id": None}) is False
    assert allowed(cfg(mode), ALICE, {}) is False
    assert allowed(cfg(mode), ALICE, {"other": "alice"}) is False


def test_arg_compares_exactly():
    mode = {"arg": "user_id"}
    assert allowed(cfg(mode), Identity("42"), {"user_id": 42}) is False
    assert allowed(cfg(mode), ALICE, {"user_id": "Alice"}) is False


def test_arg_with_args_none_is_satisfiable_by_authenticated():
    assert allowed(cfg({"arg": "user_id"}), ALICE, None) is True


@pytest.mark.parametrize("mode", [False, "any_authenticated", {"role": ["admin"]}, {"arg": "user_id"}])
@pytest.mark.parametrize("identity", [None, ADMIN])
def test_a_permission_callback_replaces_check_permission_and_is_left_to_the_worker(mode, identity):
    assert allowed(cfg(mode, permission_callback="pkg.perm:check"), identity, {"user_id": "root"}) is True
