"""workers.protocol.TaskHeader (the ``genapi`` task header both sides read) and workers.backoff."""

from __future__ import annotations

import json

import pytest

from workers import backoff
from workers.backoff import backoff_ms
from workers.protocol import TaskHeader

FULL = TaskHeader(reply="genapi:reply:g1", ref="42", deadline=1_800_000_000.25, mode="stream",
                  info={"request_id": [1, "x"], "user_id": "alice", "device_id": None, "roles": ["ops"]},
                  track=True, retries=2)


@pytest.mark.parametrize("header", [
    FULL,
    TaskHeader(reply="genapi:reply:g1", ref="1", deadline=None),
    TaskHeader(reply=None, ref=None, deadline=12.5, mode="none", retries=3),
    TaskHeader(reply="c", ref="7", deadline=None, mode="async", track=True),
], ids=["full", "defaults", "none_call", "tracked"])
def test_a_header_survives_the_trip_through_json(header):
    assert TaskHeader.from_json(json.loads(json.dumps(header.to_json()))) == header


def test_defaults_are_left_out_of_the_json():
    assert TaskHeader(reply="c", ref="1", deadline=None).to_json() == {
        "reply": "c", "ref": "1", "deadline": None, "mode": "sync"}


def test_every_field_set_is_in_the_json():
    assert FULL.to_json() == {"reply": "genapi:reply:g1", "ref": "42", "deadline": 1_800_000_000.25,
                              "mode": "stream", "info": FULL.info, "track": True, "retries": 2}


def test_a_header_missing_optional_fields_reads_as_the_defaults():
    assert TaskHeader.from_json({}) == TaskHeader(reply=None, ref=None, deadline=None)
    assert TaskHeader.from_json({"retries": None, "track": 0}) == TaskHeader(reply=None, ref=None, deadline=None)


# ------------------------------------------------------------------ backoff


def test_backoff_without_jitter_doubles_from_100_ms_up_to_5_s():
    assert [backoff_ms(attempt, jitter=False) for attempt in range(1, 10)] == [
        100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]
    assert backoff_ms(1000, jitter=False) == 5000


@pytest.mark.parametrize("attempt", [0, -3])
def test_backoff_of_an_attempt_below_one_is_the_base(attempt):
    assert backoff_ms(attempt, jitter=False) == 100


def test_backoff_base_and_cap_can_be_chosen():
    assert [backoff_ms(a, base_ms=10, max_ms=50, jitter=False) for a in range(1, 5)] == [10, 20, 40, 50]


@pytest.mark.parametrize("attempt, delay", [(1, 100), (2, 200), (3, 400), (7, 5000)])
def test_backoff_with_jitter_stays_within_half_and_one_and_a_half_times(attempt, delay):
    samples = [backoff_ms(attempt) for _ in range(500)]
    assert all(0.5 * delay <= s < 1.5 * delay for s in samples)
    assert len(set(samples)) > 1  # the jitter does vary


def test_backoff_jitter_factor_is_drawn_from_half_to_one_and_a_half(monkeypatch):
    drawn = []

    def uniform(low, high):
        drawn.append((low, high))
        return factor

    monkeypatch.setattr(backoff.random, "uniform", uniform)
    factor = 0.5
    assert backoff_ms(3) == 200
    factor = 1.4999
    assert backoff_ms(3) == 599
    assert drawn == [(0.5, 1.5), (0.5, 1.5)]
