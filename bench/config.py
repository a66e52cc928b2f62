"""What one `slotrush bench` run measures: its strategies, crowd and phase timings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SCENARIOS = ("flash", "hot", "churn", "sustained", "memory", "scale")

# What `--size 1` sends: the flat-out phases' bursts, the booking phases' bursts and the
# crowd. Every phase scales with `--size`; `--users` then sets the crowd alone.
FULL_THROUGHPUT_REQUESTS = 30_000
FULL_BOOKING_REQUESTS = 10_000
FULL_CROWD = 10_000
QUICK_SIZE = 0.1
# --scenario scale: the crowds measured at `--size 1`.
SCALE_CROWDS = (1_000, 10_000, 100_000)


def scaled(full: int, size: float, least: int = 100) -> int:
    """`full` requests at `size`, never fewer than `least` (a phase must measure something)."""
    return max(round(full * size), least)


@dataclass(frozen=True)
class BenchConfig:
    strategies: list[str]
    scenario: str
    size: float
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
    # --scenario memory: new patients booked in all, RSS sampled every `rss_every` of them.
    memory_patients: int = 200_000
    # --scenario scale: the crowd sizes and open schedules measured, one point each.
    scale_crowds: tuple[int, ...] = SCALE_CROWDS
    scale_schedules: tuple[int, ...] = (1, 10, 100, 1_000, 10_000)

    @property
    def phase_names(self) -> list[str]:
        crowd = ["crowd", "churn"] if self.scenario == "churn" else ["crowd"]
        return ["ceiling", "sold_out", "spread", "hot", *crowd, "overload", "verify"]
