"""What a fault suite run is made of: the crowd, the strategies and faults, the server's
settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CrowdPlan:
    """The crowd: `patients` each want one number of one of `schedules` schedules; they arrive
    in bursts every `burst_interval` seconds over `duration` seconds, so the crowd is there
    before, during and after each fault."""

    patients: int
    schedules: int
    capacity: int
    duration: float
    burst_interval: float = 0.25
    # Sends per patient during the crowd (the first and the retries of an unknown outcome).
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
