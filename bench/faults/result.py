"""What a scenario found: the strikes of its fault and the figures the report shows."""

from __future__ import annotations

from dataclasses import dataclass, field

# The bar of the issue: the first booking after a restart succeeds within this many seconds.
FIRST_SUCCESS_LIMIT = 10.0
# Requests answered this long after a window closed still count as inside it: pools notice a
# dead connection on its next use.
WINDOW_GRACE = 2.0


@dataclass
class Strike:
    injected: float
    recovered: float
    first_success_at: float | None

    @property
    def first_success(self) -> float | None:
        """Seconds from recovery to the first 201."""
        if self.first_success_at is None:
            return None
        return round(self.first_success_at - self.recovered, 3)

    @property
    def outage(self) -> float:
        """Seconds from the fault to its recovery (restart done, process resumed)."""
        return round(self.recovered - self.injected, 3)

    @property
    def window(self) -> tuple[float, float]:
        closed = self.first_success_at if self.first_success_at is not None else self.recovered
        return self.injected, closed + WINDOW_GRACE


@dataclass
class ScenarioResult:
    strategy: str
    fault: str
    # Strikes of a timed fault, or responses a chaos proxy dropped.
    faults_injected: int = 0
    requests: int = 0
    ok: int = 0
    failed: int = 0
    unknown: int = 0
    # Failed requests that never reached a server: the connection was refused.
    refused: int = 0
    patients: int = 0
    # Bookings wanted (each under its own key), and cancellations answered 200.
    intents: int = 0
    cancels: int = 0
    # Intents that saw at least one unknown outcome, and what their retries ended in.
    uncertain: int = 0
    unknown_resolved_booked: int = 0
    unknown_resolved_none: int = 0
    # Intents without a definite answer even after the resends.
    unresolved: int = 0
    lost: int = 0
    double_booked: int = 0
    told_no_but_booked: int = 0
    oversold: int = 0
    # Recounted from the ledger's rows: patients past a limit of their hospital's rules,
    # bookings made after their patient's blacklisting answered.
    limit_violations: int = 0
    blacklist_violations: int = 0
    audit_mismatches: int = 0
    # Numbers free in the ledger that fresh patients could not book afterwards.
    unbookable: int = 0
    # Schedules whose free numbers in Redis differ from the ledger's, and patient counters
    # that differ (redis-lua keeps them); None where Redis keeps no such state.
    redis_mismatches: int | None = None
    counter_mismatches: int | None = None
    # A paid run's (None in a free one): the lifecycle check's violations (invariants 8-10,
    # the money totals off), the money movements, the holds that lapsed, the day's no-shows.
    money_errors: int | None = None
    charges: int | None = None
    refunds: int | None = None
    lapsed: int | None = None
    no_shows: int | None = None
    # How the paid crowd's payment steps were answered: {"checkout 503": 12, ...}.
    payment_answers: dict[str, int] = field(default_factory=dict)
    # Where the strikes fell, for a fault that can strike in several places.
    struck_at: list[str] = field(default_factory=list)
    server_errors_outside_windows: int = 0
    # 503 busy answers outside the windows from a strategy that gave up under contention.
    gave_up_outside_windows: int = 0
    outage_seconds: list[float] = field(default_factory=list)
    first_success_seconds: list[float | None] = field(default_factory=list)
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems
