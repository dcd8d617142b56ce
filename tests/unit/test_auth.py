"""gateway_app.auth: signed client tokens and loading the authenticator."""

from __future__ import annotations

import time

import pytest
from flask import Flask, request
from itsdangerous import URLSafeSerializer

from gateway_app import auth
from gateway_app.auth import Identity, load_authenticator, mint_token, token_authenticator, verify_token
from workers.settings import Settings

SECRET = "unit-test-secret"


def signed(claims, secret=SECRET):
    """A token with arbitrary claims, signed exactly as mint_token signs."""
    return URLSafeSerializer(secret, salt=auth._SALT).dumps(claims)


class TestTokens:
    def test_round_trip(self):
        token = mint_token(SECRET, "alice")
        assert isinstance(token, str)
        assert verify_token(SECRET, token) == Identity("alice", (), None)

    def test_roles_and_device(self):
        token = mint_token(SECRET, "bob", ["admin", "ops"], device_id="phone-1")
        assert verify_token(SECRET, token) == Identity("bob", ("admin", "ops"), "phone-1")

    def test_roles_as_tuple(self):
        assert verify_token(SECRET, mint_token(SECRET, "bob", ("a",))).roles == ("a",)

    def test_empty_roles_dropped(self):
        assert verify_token(SECRET, mint_token(SECRET, "bob", ["", "x"])).roles == ("x",)

    def test_empty_device_means_none(self):
        assert verify_token(SECRET, mint_token(SECRET, "bob", device_id="")).device_id is None

    def test_expiry(self):
        before = time.time()
        token = mint_token(SECRET, "carol", ttl=100)
        after = time.time()
        # exp is int(mint time) + 100, somewhere in [int(before) + 100, int(after) + 100]
        assert verify_token(SECRET, token, now=before) is not None
        assert verify_token(SECRET, token, now=int(before) + 99) is not None
        assert verify_token(SECRET, token, now=int(after) + 100) is None
        assert verify_token(SECRET, token, now=after + 1000) is None

    def test_expiry_boundary_is_exclusive(self):
        token = signed({"sub": "dan", "roles": [], "exp": 1_000})
        assert verify_token(SECRET, token, now=999.999) == Identity("dan")
        assert verify_token(SECRET, token, now=1_000) is None

    def test_default_ttl_is_a_day(self):
        token = mint_token(SECRET, "erin")
        now = time.time()
        assert verify_token(SECRET, token, now=now + 86400 - 60) is not None
        assert verify_token(SECRET, token, now=now + 86400 + 60) is None

    def test_wrong_secret(self):
        assert verify_token("other-secret", mint_token(SECRET, "alice")) is None

    def test_forged_token(self):
        token = mint_token(SECRET, "alice", ["user"])
        payload, _, signature = token.rpartition(".")
        forged_payload = URLSafeSerializer("attacker", salt=auth._SALT).dumps(
            {"sub": "alice", "roles": ["admin"], "exp": int(time.time()) + 100}).rpartition(".")[0]
        assert verify_token(SECRET, f"{forged_payload}.{signature}") is None
        # change the first character: the last one of base64 may carry only padding bits
        flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
        assert verify_token(SECRET, f"{payload}.{flipped}") is None

    def test_token_signed_with_another_salt(self):
        token = URLSafeSerializer(SECRET, salt="other").dumps({"sub": "x", "roles": [], "exp": 2**40})
        assert verify_token(SECRET, token) is None

    @pytest.mark.parametrize("token", ["", "garbage", "a.b", "....", "é", "x" * 500])
    def test_malformed(self, token):
        assert verify_token(SECRET, token) is None

    @pytest.mark.parametrize(
        "claims",
        [
            ["alice"],
            "alice",
            {"roles": [], "exp": 2**40},
            {"sub": "", "roles": [], "exp": 2**40},
            {"sub": 5, "roles": [], "exp": 2**40},
            {"sub": "a", "roles": []},
            {"sub": "a", "roles": [], "exp": "2099"},
            {"sub": "a", "roles": [], "exp": 1e12},
            {"sub": "a", "roles": "admin", "exp": 2**40},
            {"sub": "a", "roles": [1], "exp": 2**40},
        ],
    )
    def test_bad_claims(self, claims):
        assert verify_token(SECRET, signed(claims)) is None

    def test_non_string_device_ignored(self):
        identity = verify_token(SECRET, signed({"sub": "a", "roles": [], "exp": 2**40, "dev": 5}))
        assert identity == Identity("a", (), None)

    def test_missing_roles_means_none(self):
        assert verify_token(SECRET, signed({"sub": "a", "exp": 2**40})) == Identity("a")

    def test_mint_rejects_empty_user(self):
        with pytest.raises(ValueError, match="user id"):
            mint_token(SECRET, "")

    @pytest.mark.parametrize("ttl", [0, -1])
    def test_mint_rejects_non_positive_ttl(self, ttl):
        with pytest.raises(ValueError, match="ttl"):
            mint_token(SECRET, "a", ttl=ttl)


class TestTokenAuthenticator:
    """The authenticator reads ``?token=`` from a real Flask request."""

    app = Flask(__name__)

    def authenticate(self, query: str, secret: str = SECRET):
        with self.app.test_request_context(f"/ws{query}"):
            return token_authenticator(request, Settings(secret_key=secret))

    def test_valid_token(self):
        token = mint_token(SECRET, "alice", ["admin"])
        assert self.authenticate(f"?token={token}") == Identity("alice", ("admin",))

    def test_no_token(self):
        assert self.authenticate("") is None
        assert self.authenticate("?token=") is None
        assert self.authenticate("?user_id=alice&roles=admin") is None

    def test_token_for_other_secret(self):
        assert self.authenticate(f"?token={mint_token('other', 'alice')}") is None

    def test_uses_settings_secret(self):
        token = mint_token("other", "alice")
        assert self.authenticate(f"?token={token}", secret="other") == Identity("alice")


class TestLoadAuthenticator:
    def test_default(self):
        assert load_authenticator(Settings().authenticator) is token_authenticator

    def test_dotted_attribute(self):
        assert load_authenticator("gateway_app.auth:Identity.__init__") is Identity.__init__

    @pytest.mark.parametrize("path", ["gateway_app.auth", "gateway_app.auth:", ":token_authenticator", ""])
    def test_not_module_function(self, path):
        with pytest.raises(ValueError) as info:
            load_authenticator(path)
        assert str(info.value) == f"GENAPI_AUTHENTICATOR must be 'module:function', got {path!r}"

    def test_unknown_module(self):
        with pytest.raises(ValueError, match=r"GENAPI_AUTHENTICATOR 'no_such_module_xyz:f' cannot be imported"):
            load_authenticator("no_such_module_xyz:f")

    def test_unknown_attribute(self):
        with pytest.raises(ValueError, match=r"GENAPI_AUTHENTICATOR 'gateway_app.auth:nope' cannot be imported"):
            load_authenticator("gateway_app.auth:nope")

    def test_not_callable(self):
        with pytest.raises(ValueError, match=r"GENAPI_AUTHENTICATOR 'gateway_app.auth:_SALT' is not callable"):
            load_authenticator("gateway_app.auth:_SALT")


def test_signed_token_with_an_undecodable_payload_is_refused():
    # sign a payload that is not base64 JSON: the signature is valid, the payload is not
    signer = URLSafeSerializer("s3cret", salt=auth._SALT).make_signer()
    forged = signer.sign(b"!!not-base64!!").decode()
    assert verify_token("s3cret", forged) is None
