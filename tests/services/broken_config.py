"""A service module with a configuration mistake: `genapi worker` must name the field."""

from workers import GenApi

api = GenApi("broken")


@api.function("oops", timeout=50)
def oops():
    return None
