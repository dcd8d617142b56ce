"""gateway_app.versions: semver ordering and version resolution (reference §3.3)."""

from __future__ import annotations

import pytest

from gateway_app.errors import Rejected
from gateway_app.versions import resolve, semver_key
from workers.funconfig import FunConfig

ORDERED = [
    "0.0.1",
    "0.9.0",
    "1.0.0-0",
    "1.0.0-2",
    "1.0.0-10",
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.2",
    "1.0.0-alpha.10",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.2.0",
    "1.10.0",
    "2.0.0",
    "10.0.0",
]


def test_semver_precedence():
    assert sorted(ORDERED, key=semver_key) == ORDERED
    assert sorted(reversed(ORDERED), key=semver_key) == ORDERED


@pytest.mark.parametrize(("low", "high"), [("1.0.0-rc.1", "1.0.0"), ("1.9.0", "1.10.0"), ("1.0.9", "1.0.10"),
                                           ("9.0.0", "10.0.0"), ("1.0.0-alpha.9", "1.0.0-alpha.10"),
                                           ("1.0.0-9", "1.0.0-a")])
def test_pairs(low, high):
    assert semver_key(low) < semver_key(high)


@pytest.mark.parametrize("version", ["beta", "1", "1.0", "latest", "01.0.0", "1.0.0.0", "", "1.0.0-"])
def test_non_semver_counts_as_zero(version):
    assert semver_key(version) == semver_key("0.0.0")
    assert semver_key(version) < semver_key("0.0.1")
    assert semver_key(version) > semver_key("0.0.0-alpha")


def test_v_prefix_and_build_metadata():
    assert semver_key("v1.2.3") == semver_key("1.2.3")
    assert semver_key("1.2.3+build.5") == semver_key("1.2.3")
    assert semver_key("1.2.3-rc.1+b") == semver_key("1.2.3-rc.1")


# ------------------------------------------------------------------------- resolve


def cfg(version=None, disabled=False):
    return FunConfig(service="svc", request_type="rt", version=version, disabled=disabled)


def table(*configs):
    return {c.version: c for c in configs}


def error(versions, version):
    with pytest.raises(Rejected) as info:
        resolve(versions, "rt", version)
    assert info.value.can_retry is False
    return info.value.error


class TestExplicitVersion:
    def test_exact_lookup(self):
        versions = table(cfg("1.0.0"), cfg("2.0.0"), cfg())
        assert resolve(versions, "rt", "1.0.0") is versions["1.0.0"]
        assert resolve(versions, "rt", "2.0.0") is versions["2.0.0"]

    def test_non_semver_exact(self):
        versions = table(cfg("beta"), cfg("2.0.0"))
        assert resolve(versions, "rt", "beta") is versions["beta"]

    def test_unknown(self):
        versions = table(cfg("1.0.0"), cfg())
        assert error(versions, "3.0.0") == "unsupported function: rt version 3.0.0"
        assert error(versions, "1.0") == "unsupported function: rt version 1.0"

    def test_disabled(self):
        versions = table(cfg("1.0.0", disabled=True), cfg("2.0.0"))
        assert error(versions, "1.0.0") == "disabled function: rt version 1.0.0"

    def test_no_configs(self):
        assert error({}, "1.0.0") == "unsupported function: rt version 1.0.0"
        assert error(None, "1.0.0") == "unsupported function: rt version 1.0.0"


class TestLatest:
    def test_highest_semver_wins(self):
        versions = table(cfg("1.2.0"), cfg("1.10.0"), cfg("1.9.9"), cfg("0.1.0"))
        assert resolve(versions, "rt", None) is versions["1.10.0"]

    def test_release_beats_pre_release(self):
        versions = table(cfg("2.0.0-rc.1"), cfg("1.5.0"), cfg("2.0.0"))
        assert resolve(versions, "rt", None) is versions["2.0.0"]
        versions = table(cfg("2.0.0-rc.1"), cfg("1.5.0"))
        assert resolve(versions, "rt", None) is versions["2.0.0-rc.1"]

    def test_versioned_preferred_over_unversioned(self):
        versions = table(cfg(), cfg("0.0.1"))
        assert resolve(versions, "rt", None) is versions["0.0.1"]

    def test_non_semver_versioned_still_preferred_over_unversioned(self):
        versions = table(cfg(), cfg("beta"))
        assert resolve(versions, "rt", None) is versions["beta"]

    def test_non_semver_sorts_as_zero(self):
        versions = table(cfg("beta"), cfg("0.0.1"))
        assert resolve(versions, "rt", None) is versions["0.0.1"]

    def test_unversioned_when_it_is_the_only_enabled(self):
        versions = table(cfg())
        assert resolve(versions, "rt", None) is versions[None]
        versions = table(cfg(), cfg("1.0.0", disabled=True), cfg("2.0.0", disabled=True))
        assert resolve(versions, "rt", None) is versions[None]

    def test_disabled_latest_falls_back_to_next_highest(self):
        versions = table(cfg("1.0.0"), cfg("2.0.0", disabled=True), cfg("1.5.0"))
        assert resolve(versions, "rt", None) is versions["1.5.0"]

    def test_all_disabled(self):
        versions = table(cfg("1.0.0", disabled=True), cfg(disabled=True))
        assert error(versions, None) == "unsupported function: rt version latest"

    def test_disabled_unversioned_alone_is_unsupported_not_disabled(self):
        assert error(table(cfg(disabled=True)), None) == "unsupported function: rt version latest"

    def test_nothing_registered(self):
        assert error({}, None) == "unsupported function: rt version latest"
        assert error(None, None) == "unsupported function: rt version latest"

    def test_order_of_mapping_does_not_matter(self):
        configs = [cfg("1.0.0"), cfg("3.0.0"), cfg("2.0.0"), cfg()]
        for rotation in range(len(configs)):
            rotated = configs[rotation:] + configs[:rotation]
            assert resolve(table(*rotated), "rt", None).version == "3.0.0"
