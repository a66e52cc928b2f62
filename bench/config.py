"""What one `slotrush bench` run measures: its strategies, crowd and phase timings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SCENARIOS = ("flash", "hot", "churn", "sustained")


@dataclass(frozen=True)
class BenchConfig:
    strategies: list[str]
    scenario: str
    users: int
    capacity: int
    schedules: int
    duration: float
    workers: int
    connections: int
    throughput_requests: int
    booking_requests: int
    # The ceiling phase sends for `phase_seconds`; the phases measured against it alternate
    # `slices` slices of `slice_seconds` with slices of the ceiling. Nothing runs longer
    # than `max_phase_seconds`.
    phase_seconds: float
    slice_seconds: float
    slices: int
    max_phase_seconds: float
    # The overload phase offers `overload_factor` times the sustainable booking rate for
    # `overload_seconds`, over enough connections that the generator never queues.
    overload_factor: float
    overload_seconds: float
    overload_connections: int
    reference: bool
    quick: bool
    results: Path

    @property
    def phase_names(self) -> list[str]:
        crowd = ["crowd", "churn"] if self.scenario == "churn" else ["crowd"]
        return ["ceiling", "sold_out", "spread", "hot", *crowd, "overload", "verify"]
