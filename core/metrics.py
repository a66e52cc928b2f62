"""Prometheus metrics of the core. The server exports them (multiprocess-safe with workers)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

BOOKING_OUTCOMES = Counter(
    "slotrush_booking_outcomes_total",
    "Booking attempts that reached a strategy, by outcome code ('booked' on success).",
    ["strategy", "code"],
)
BOOKING_SECONDS = Histogram(
    "slotrush_booking_seconds",
    "Time a strategy took to answer one booking attempt.",
    ["strategy"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
)
CANCELLATIONS = Counter(
    "slotrush_cancellations_total", "Bookings cancelled, by strategy.", ["strategy"]
)
RECONCILER_ACTIONS = Counter(
    "slotrush_reconciler_actions_total",
    "What the Redis reconciler did: numbers given back, leases confirmed, slots rebuilt.",
    ["strategy", "action"],
)
UNREPLICATED_BATCHES = Counter(
    "slotrush_redis_unreplicated_batches_total",
    "Batches of Redis script calls a cluster node answered before a replica acknowledged them "
    "(SLOTRUSH_REDIS_REPLICA_WAIT_MS passed): lost if that node fails before replicating.",
)
BUSY_RETRIES = Counter(
    "slotrush_strategy_retries_total",
    "Retries inside a strategy (optimistic version conflicts, Redis/ledger divergence).",
    ["strategy", "reason"],
)
REPLICA_LAG = Gauge(
    "slotrush_replica_lag_seconds",
    "How far the streaming replica serving browsing reads was behind its primary when last "
    "checked (NaN: not streaming or not answering).",
    multiprocess_mode="livemax",
)
BROWSING_READS = Counter(
    "slotrush_browsing_reads_total",
    "Public browsing reads, by the server that answered them: replica or primary.",
    ["served_by"],
)
