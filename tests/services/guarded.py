"""One plain function, and one whose hook the test allowlist does not list."""

from workers import GenApi

api = GenApi("guarded")


@api.function("plain")
def plain():
    return "plain"


@api.function("hooked", before_execute="tests.services.hooks:audit")
def hooked():
    return "hooked"
