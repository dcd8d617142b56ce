"""A config naming a callable that can never be registered: the worker must refuse it."""

from workers import GenApi

api = GenApi("blocked")


@api.function("run", before_execute="subprocess:run")
def run():
    return None
