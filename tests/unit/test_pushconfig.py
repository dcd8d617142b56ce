"""workers.pushconfig: canonical encoding, HMAC signatures, config versions, PushConfig building."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from workers import pushconfig
from workers.funconfig import load_funconfig
from workers.pushconfig import SIGNATURE, build, canonical, config_version, signature, signature_valid

TOKEN = "push-token-0123456789"


def cfg(request_type: str = "get", **fields):
    return load_funconfig({"service": "billing", "request_type": request_type, **fields})


def unsigned() -> dict:
    return {
        "service": "billing",
        "nodes": ["genapi-1@host"],
        "config_version": "abc123",
        "fun_configs": [cfg("charge").to_json()],
        "push_id": "p-1",
    }


def signed(token: str = TOKEN) -> dict:
    data = unsigned()
    data[SIGNATURE] = signature(data, token)
    return data


# -------------------------------------------------------------------- canonical


def test_canonical_is_independent_of_key_order():
    a = {"b": 1, "a": {"y": [1, 2], "x": None}, "c": "z"}
    b = {"c": "z", "a": {"x": None, "y": [1, 2]}, "b": 1}
    assert canonical(a) == canonical(b)


def test_canonical_exact_bytes_sorted_without_spaces():
    assert canonical({"b": [1, 2], "a": {"d": True, "c": None}}) == b'{"a":{"c":null,"d":true},"b":[1,2]}'


def test_canonical_has_no_spaces_even_for_nested_values():
    encoded = canonical(unsigned())
    assert b" " not in encoded
    assert b"\n" not in encoded


def test_canonical_is_utf8_not_escaped():
    assert canonical({"name": "café ✓"}) == '{"name":"café ✓"}'.encode()


def test_canonical_keeps_list_order():
    assert canonical([2, 1]) != canonical([1, 2])


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_canonical_refuses_non_json_numbers(value):
    with pytest.raises(ValueError):
        canonical({"x": value})


# -------------------------------------------------------------------- signature


def test_signature_is_hmac_sha256_of_the_canonical_form():
    data = unsigned()
    expected = hmac.new(TOKEN.encode(), canonical(data), hashlib.sha256).hexdigest()
    assert signature(data, TOKEN) == expected
    assert re.fullmatch(r"[0-9a-f]{64}", expected)


def test_signature_ignores_key_order():
    data = unsigned()
    assert signature(dict(reversed(list(data.items()))), TOKEN) == signature(data, TOKEN)


def test_signature_field_itself_is_excluded():
    data = unsigned()
    plain = signature(data, TOKEN)
    assert signature({**data, SIGNATURE: "anything"}, TOKEN) == plain
    assert signature({**data, SIGNATURE: plain}, TOKEN) == plain


def test_signature_does_not_modify_data():
    data = signed()
    before = dict(data)
    signature(data, TOKEN)
    assert data == before


def test_signature_depends_on_the_token():
    assert signature(unsigned(), TOKEN) != signature(unsigned(), TOKEN + "x")


def test_valid_signature_accepted():
    assert signature_valid(signed(), TOKEN) is True


def test_wrong_token_rejected():
    assert signature_valid(signed(), "another-token") is False
    assert signature_valid(signed("another-token"), TOKEN) is False


@pytest.mark.parametrize("value", [None, "", 123, ["x"], {"sig": "x"}, b"abc"])
def test_missing_empty_or_non_string_signature_rejected(value):
    data = unsigned()
    if value is not None:
        data[SIGNATURE] = value
    assert signature_valid(data, TOKEN) is False


def test_signature_of_wrong_case_rejected():
    data = signed()
    data[SIGNATURE] = data[SIGNATURE].upper()
    assert signature_valid(data, TOKEN) is False


@pytest.mark.parametrize("field, value", [
    ("service", "billing2"),
    ("nodes", ["genapi-2@host"]),
    ("nodes", ["genapi-1@host", "genapi-2@host"]),
    ("config_version", "abc124"),
    ("fun_configs", [cfg("refund").to_json()]),
    ("fun_configs", []),
    ("push_id", "p-2"),
    ("force", True),
    ("force", False),
    ("extra", None),
])
def test_any_changed_or_added_field_invalidates_the_signature(field, value):
    data = signed()
    data[field] = value
    assert signature_valid(data, TOKEN) is False


def test_removed_field_invalidates_the_signature():
    data = signed()
    del data["push_id"]
    assert signature_valid(data, TOKEN) is False


def test_changed_nested_config_invalidates_the_signature():
    data = signed()
    data["fun_configs"][0]["timeout"] = 9999
    assert signature_valid(data, TOKEN) is False


def test_reordered_keys_keep_the_signature_valid():
    data = signed()
    assert signature_valid(dict(reversed(list(data.items()))), TOKEN) is True


# --------------------------------------------------------------- config_version


def test_config_version_is_a_short_hex_hash():
    assert re.fullmatch(r"[0-9a-f]{16}", config_version([cfg("a"), cfg("b")]))


def test_config_version_is_stable_across_order():
    a, b, c = cfg("a"), cfg("b", version="1.0.0"), cfg("b", version="2.0.0")
    assert config_version([a, b, c]) == config_version([c, a, b]) == config_version([b, c, a])


def test_config_version_is_stable_across_equal_configs():
    assert config_version([cfg("a", timeout=1000)]) == config_version([cfg("a", timeout=1000)])


@pytest.mark.parametrize("changed", [
    cfg("a", timeout=1000),
    cfg("a", version="1.0.0"),
    cfg("a", arg_types={"x": "string"}),
    cfg("a", disabled=True),
    cfg("renamed"),
])
def test_config_version_changes_when_a_config_changes(changed):
    assert config_version([changed, cfg("b")]) != config_version([cfg("a"), cfg("b")])


def test_config_version_changes_when_a_config_is_added_or_removed():
    assert config_version([cfg("a")]) != config_version([cfg("a"), cfg("b")])


def test_config_version_of_no_configs():
    assert config_version([]) == hashlib.sha256(b"[]").hexdigest()[:16]


def test_config_version_accepts_a_generator():
    configs = [cfg("a"), cfg("b")]
    assert config_version(c for c in configs) == config_version(configs)


# ------------------------------------------------------------------------ build


def test_build_without_token_is_unsigned():
    configs = [cfg("a"), cfg("b")]
    data = build("billing", "genapi-1@host", configs, "v1", None)
    assert SIGNATURE not in data
    assert data["service"] == "billing"
    assert data["nodes"] == ["genapi-1@host"]
    assert data["config_version"] == "v1"
    assert data["fun_configs"] == [c.to_json() for c in configs]
    assert data["force"] is False
    assert re.fullmatch(r"[0-9a-f]{32}", data["push_id"])
    assert set(data) == {"service", "nodes", "config_version", "fun_configs", "force", "push_id"}


def test_build_with_empty_token_is_unsigned():
    assert SIGNATURE not in build("billing", "n", [cfg()], "v1", "")


def test_build_with_token_is_signed_and_valid():
    data = build("billing", "genapi-1@host", [cfg()], "v1", TOKEN)
    assert data[SIGNATURE] == signature(data, TOKEN)
    assert signature_valid(data, TOKEN)
    assert not signature_valid(data, "other")


def test_build_push_ids_are_unique():
    assert build("s", "n", [], "v", None)["push_id"] != build("s", "n", [], "v", None)["push_id"]


def test_build_force_and_extra_fields_are_signed():
    data = build("billing", "n", [cfg()], "v1", TOKEN, force=True, reply_to="r-1")
    assert data["force"] is True and data["reply_to"] == "r-1"
    assert signature_valid(data, TOKEN)
    tampered = {**data, "force": False}
    assert not signature_valid(tampered, TOKEN)
    tampered = {**data, "reply_to": "r-2"}
    assert not signature_valid(tampered, TOKEN)


def test_build_output_is_json_canonicalisable():
    data = build("billing", "n", [cfg(arg_types={"x": "string"}, timeout="infinity")], "v1", TOKEN)
    assert pushconfig.canonical(data)
