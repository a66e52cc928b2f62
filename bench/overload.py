"""The overload phase: three times the bookings a strategy sustains, and what the server
does with them.

First the sustainable rate is measured in the same run (bookings flat out, the 201s per
second). Then new patients arrive at `factor` times that rate, evenly spread, each sending
once: no retries, so each latency is one request's, from its planned arrival to its answer.
A server with backpressure answers every request within its deadline (a booking, or 503
busy at once when its waiting room is full, or busy at the deadline), keeps its memory flat
while the excess comes in, and loses or oversells nothing (the run's invariant verdict).
"""

from __future__ import annotations

import math
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil
from prometheus_client.parser import text_string_to_metric_families

from bench import loadgen
from bench.phases import PhaseResult

# Memory that grows by no more than this share over the phase counts as flat: allocators
# keep what a burst took, but a queue without a bound grows with every second of it.
FLAT_RSS_GROWTH = 0.25
_RSS_SAMPLE_SECONDS = 0.2
_SHED = "slotrush_load_shed_total"


@dataclass
class Overload:
    sustainable_rps: float
    offered_rps: float
    seconds: float
    deadline_s: float
    phase: PhaseResult
    # Server RSS (every process) in MiB, sampled through the phase.
    rss_mib: list[float] = field(default_factory=list)
    # 503s the server counted, by reason (server.admission, server.middlewares).
    shed: dict[str, float] = field(default_factory=dict)

    @property
    def max_latency_ms(self) -> float:
        return self.phase.latency_ms["max"]

    @property
    def within_deadline(self) -> bool:
        latency = self.max_latency_ms
        return not math.isnan(latency) and latency <= 1000 * self.deadline_s

    @property
    def rss_growth(self) -> float | None:
        if len(self.rss_mib) < 2 or not self.rss_mib[0]:
            return None
        return max(self.rss_mib) / self.rss_mib[0] - 1

    @property
    def rss_flat(self) -> bool:
        growth = self.rss_growth
        return growth is not None and growth <= FLAT_RSS_GROWTH

    def to_dict(self) -> dict[str, Any]:
        return {
            "sustainable_rps": self.sustainable_rps,
            "offered_rps": self.offered_rps,
            "seconds": self.seconds,
            "deadline_s": self.deadline_s,
            "max_latency_ms": self.max_latency_ms,
            "within_deadline": self.within_deadline,
            "rss_mib": self.rss_mib,
            "rss_growth": self.rss_growth,
            "rss_flat": self.rss_flat,
            "shed": self.shed,
            "phase": self.phase.to_dict(),
        }


def sustainable_rate(shot: loadgen.Shot) -> float:
    """Bookings confirmed per second by a flat-out shot."""
    booked = sum(1 for status in shot.status if status == 201)
    return booked / shot.elapsed if shot.elapsed > 0 else 0.0


class RssSampler:
    """The summed RSS of some processes, sampled in a thread until stopped."""

    def __init__(self, processes: Callable[[], list[psutil.Process]]) -> None:
        self._processes = processes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.samples: list[float] = []

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(_RSS_SAMPLE_SECONDS)

    def _sample(self) -> None:
        total = 0
        for process in self._processes():
            try:
                total += process.memory_info().rss
            except psutil.Error:
                continue
        self.samples.append(round(total / 2**20, 1))


def shed_counts(url: str) -> dict[str, float]:
    """The server's load-shedding counters, by reason, from /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == _SHED
    }


def shed_between(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {reason: after[reason] - before.get(reason, 0.0) for reason in sorted(after)}
