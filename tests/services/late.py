"""A service whose worker starts after the gateway, in the late-worker test."""

from workers import GenApi

api = GenApi("late")


@api.function("hello", arg_types={"name": "string"})
def hello(name):
    return f"hello {name}"
