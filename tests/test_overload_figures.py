"""The overload phase's verdicts: in time against the deadline, memory flat."""

from __future__ import annotations

import math

from bench.loadgen import Shot
from bench.overload import Overload, sustainable_rate
from bench.phases import summarise


def shot(statuses: list[int], latencies: list[float], elapsed: float) -> Shot:
    n = len(statuses)
    return Shot(
        arrivals=[0.0] * n,
        status=statuses,
        body=[b""] * n,
        latency=latencies,
        answered_at=latencies,
        attempts=[1] * n,
        sent=[True] * n,
        elapsed=elapsed,
    )


def overload(latencies: list[float], rss: list[float]) -> Overload:
    phase = summarise("overload", shot([201] * len(latencies), latencies, 1.0))
    return Overload(100.0, 300.0, 1.0, deadline_s=5.0, phase=phase, rss_mib=rss)


def test_the_sustainable_rate_counts_bookings_only() -> None:
    assert sustainable_rate(shot([201, 201, 503, 409], [0.1] * 4, 2.0)) == 1.0


def test_answers_past_the_deadline_are_late() -> None:
    assert overload([0.5, 4.9], [100, 100]).within_deadline
    assert not overload([0.5, 5.2], [100, 100]).within_deadline
    assert not overload([math.nan], [100, 100]).within_deadline


def test_memory_that_keeps_growing_is_not_flat() -> None:
    assert overload([0.1], [100, 110, 120, 118]).rss_flat
    assert not overload([0.1], [100, 140, 180]).rss_flat
    assert not overload([0.1], [100]).rss_flat
