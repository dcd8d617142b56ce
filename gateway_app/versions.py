"""Which FunConfig a request runs (reference §3.3).

An explicit version is an exact lookup (unknown → ``unsupported``, disabled →
``disabled``). Without one, the highest enabled semantic version wins; the unversioned
config is used only when it is the only enabled one. Versions that are not semver count as
``0.0.0``; a pre-release sorts below its release.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from workers.funconfig import FunConfig

from . import errors

_SEMVER = re.compile(
    r"v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?")


def semver_key(version: str) -> tuple:
    """A sort key with semver precedence; non-semver strings sort as ``0.0.0``."""
    match = _SEMVER.fullmatch(version)
    if not match:
        return (0, 0, 0, 1, ())
    major, minor, patch, pre = match.groups()
    if pre is None:
        return (int(major), int(minor), int(patch), 1, ())
    # numeric identifiers sort below alphanumeric ones, and numerically among themselves
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (int(major), int(minor), int(patch), 0, parts)


def resolve(versions: Mapping[str | None, FunConfig] | None, request_type: str,
            version: str | None) -> FunConfig:
    """The config to run, or :class:`Rejected` with the catalogue message."""
    versions = versions or {}
    if version is not None:
        config = versions.get(version)
        if config is None:
            raise errors.unsupported(request_type, version)
        if config.disabled:
            raise errors.disabled(request_type, version)
        return config
    enabled = [c for c in versions.values() if not c.disabled]
    if not enabled:
        raise errors.unsupported(request_type, None)
    versioned = [c for c in enabled if c.version]
    if not versioned:
        return enabled[0]
    return max(versioned, key=lambda c: (semver_key(c.version), c.version))
