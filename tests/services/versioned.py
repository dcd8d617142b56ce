"""A service with two versions of one function and a single-version one (registry tests).

``VERSIONED_CONFIG_VERSION`` in the environment sets the service's config_version, so a
test can restart the worker as a "new release" whose push is registered again.
"""

import os

from workers import GenApi

api = GenApi("versioned", config_version=os.environ.get("VERSIONED_CONFIG_VERSION") or None)


@api.function("calc", version="1.0.0")
def calc_1():
    return "1.0.0"


@api.function("calc", version="2.0.0")
def calc_2():
    return "2.0.0"


@api.function("only", version="1.0.0")
def only():
    return "only"
