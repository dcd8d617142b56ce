"""Callables that service configs name (allowlist tests)."""


def audit(request, args):
    return args
