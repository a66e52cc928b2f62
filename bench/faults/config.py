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
class PaymentPlan:
    """The paid crowd of the payment faults: its schedules cost `fee_cents`, a hold lapses
    `window_seconds` after it is made (the database's `slotrush.payment_window_seconds`, so
    that lapses come while the fault strikes). Every `lapse_every`-th patient (counted from
    half of it, apart from those who cancel) lets its holds lapse, the others pay; those who
    cancel are refunded. After the crowd, the refunds and lapses are waited for, at most
    `settle_seconds` (a killed job runner's claims lapse after pgqueuer's 30 s heartbeat).
    With a day-end fault, `day_bookings` paid bookings of today are settled mid-strike."""

    fee_cents: int = 2500
    window_seconds: float = 3.0
    lapse_every: int = 4
    settle_seconds: float = 120.0
    day_bookings: int = 10


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
    payments: PaymentPlan = PaymentPlan()


def uses_redis_state(strategy: str) -> bool:
    """Redis strategies keep the free numbers in Redis; the others keep nothing there."""
    return strategy.startswith("redis-")


def keeps_counters_in_redis(strategy: str) -> bool:
    """redis-lua keeps the patients' counters (and the rules) in Redis beside the numbers."""
    return strategy == "redis-lua"


def lease_settle_seconds(config: SuiteConfig) -> float:
    """How long after its last request every lease a Redis strategy took has run out and
    been reconciled."""
    return config.lease_seconds + 5 * config.reconcile_interval + 0.5
