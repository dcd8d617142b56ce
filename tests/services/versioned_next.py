"""The next release of `versioned`: it adds version 3.0.0 of `calc` (a rolling deploy)."""

from workers import GenApi

api = GenApi("versioned")


@api.function("calc", version="3.0.0")
def calc_3():
    return "3.0.0"
