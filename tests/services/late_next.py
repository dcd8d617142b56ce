"""The next release of the `late` service: one more function, as in a rolling deploy."""

from workers import GenApi

api = GenApi("late")


@api.function("hello", arg_types={"name": "string"})
def hello(name):
    return f"hello {name}"


@api.function("goodbye", arg_types={"name": "string"})
def goodbye(name):
    return f"goodbye {name}"
