"""What a fault suite run is made of: the crowd, the strategies and faults, the server's
settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CrowdPlan:
    """The crowd: `patients` each want several numbers on one date, `intents` of the
    `schedules` schedules (spread over `departments` departments), two of them in one
    department and the others in more: so the per-day and per-department limits refuse
    some, under the fault. They arrive in bursts every `burst_interval` seconds over
    `duration` seconds, so the crowd is there before, during and after each fault; every
    `rebook_every`-th patient then cancels a booking and books it again, and every
    `blacklist_every`-th is blacklisted as the crowd arrives (racing the first loads)."""

    patients: int
    schedules: int
    capacity: int
    duration: float
    departments: int = 3
    intents: int = 4
    rebook_every: int = 4
    blacklist_every: int = 10
    burst_interval: float = 0.25
    # Sends per intent during the crowd (the first and the retries of an unknown outcome).
    attempts: int = 3
    client_timeout: float = 2.0


@dataclass(frozen=True)
class SuiteConfig:
    strategies: tuple[str, ...]
    faults: tuple[str, ...]
    crowd: CrowdPlan
    strikes: int = 2
    workers: int = 2
    drop_rate: float = 0.05
    lease_seconds: float = 2.0
    reconcile_interval: float = 0.2
    seed: int = 0


def uses_redis_state(strategy: str) -> bool:
    """Redis strategies keep the free numbers in Redis; the others keep nothing there."""
    return strategy.startswith("redis-")


def keeps_counters_in_redis(strategy: str) -> bool:
    """redis-lua keeps the patients' counters (and the rules) in Redis beside the numbers."""
    return strategy == "redis-lua"
