"""A service whose worker starts after the gateway, in the late-worker test."""

from workers import GenApi

api = GenApi("late")


@api.function("hello", arg_types={"name": "string"})
def hello(name):
    return f"hello {name}"


@api.function("wait_forever", arg_types={"mark": "string"}, timeout="infinity")
def wait_forever(mark):
    """Marks Redis when it starts, then waits far longer than any test."""
    import os
    import time

    import redis

    redis.Redis.from_url(os.environ["GENAPI_REDIS_URL"]).set(mark, "started", ex=60)
    time.sleep(600)


@api.function("slow_hello", arg_types={"mark": "string"}, timeout=20000)
def slow_hello(mark):
    """Marks Redis when it starts, then takes two seconds."""
    import os
    import time

    import redis

    redis.Redis.from_url(os.environ["GENAPI_REDIS_URL"]).set(mark, "started", ex=60)
    time.sleep(2)
    return "slow hello"
