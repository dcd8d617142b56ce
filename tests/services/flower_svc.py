"""Functions the Flower tests call: one per mode, and one with a sensitive argument
(``genapi dev --module tests.services.flower_svc``)."""

from __future__ import annotations

from workers import GenApi

api = GenApi("flower_svc")


@api.function("login", arg_types={"user": "string", "password": "string"}, sensitive=["password"])
def login(user, password):
    """Flower must show the user but never the password."""
    return {"user": user, "ok": bool(password)}


@api.function("later", arg_types={"n": "num"}, response_type="async")
def later(n):
    return n * 2


@api.function("count", arg_types={"n": "num"}, response_type="stream")
def count(n):
    yield from range(int(n))


@api.function("note", arg_types={"text": "string"}, response_type="none")
def note(text):
    return None
