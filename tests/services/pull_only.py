"""A service that never pushes: a gateway in pull mode has to ask its workers."""

from workers import GenApi

api = GenApi("pulled", push=False)


@api.function("hello", arg_types={"name": "string"})
def hello(name):
    return f"pulled hello {name}"
