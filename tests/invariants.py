"""The invariants of API.md as reusable checks over the ledger's audit and what clients saw.

A booking holds its number while pending_payment, booked, attended or no_show (API.md 1.1);
the audit counts held numbers.

Every check returns human-readable violations, so a test reads `assert await violations(...)
== []` and a failure says what broke. The same functions judge the real strategies and the
deliberately racy one (tests/racy_strategy.py), which is how we know they can fail.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

import asyncpg

from core.booking import BookingService
from core.domain import Booking, BookingStatus, Code
from core.errors import SlotrushError
from core.ledger import Audit, Ledger
from core.queries import query

BOOKED = "booked"

Value = TypeVar("Value", int, str)


@dataclass
class Observed:
    """What the clients of one test were told, recorded as they were told it."""

    # Every booking a client was given (a 201), by id; replays of one booking count once.
    confirmed: dict[int, Booking] = field(default_factory=dict)
    # Ids of bookings the clients cancelled successfully.
    cancelled: set[int] = field(default_factory=set)
    # Ids of bookings the lifecycle ended without their clients: lapsed holds, suspensions.
    released: set[int] = field(default_factory=set)
    # (schedule id, "booked" or an error code) -> how many answers.
    answers: Counter[tuple[int, str]] = field(default_factory=Counter)

    async def book(
        self, service: BookingService, patient_id: str, schedule_id: int, key: str | None = None
    ) -> Booking | Code:
        try:
            outcome = await service.book(patient_id, schedule_id, key)
        except SlotrushError as exc:
            self.answers[(schedule_id, exc.code.value)] += 1
            return exc.code
        self.answers[(schedule_id, BOOKED)] += 1
        self.confirmed[outcome.booking.id] = outcome.booking
        return outcome.booking

    async def cancel(
        self, service: BookingService, patient_id: str, booking_id: int
    ) -> Booking | Code:
        try:
            cancelled = await service.cancel(patient_id, booking_id)
        except SlotrushError as exc:
            return exc.code
        self.cancelled.add(cancelled.id)
        return cancelled

    @property
    def held(self) -> list[Booking]:
        """Bookings the clients believe they still hold."""
        gone = self.cancelled | self.released
        return [b for b in self.confirmed.values() if b.id not in gone]

    def codes(self) -> Counter[str]:
        """Answers by code, over every schedule."""
        totals: Counter[str] = Counter()
        for (_, code), count in self.answers.items():
            totals[code] += count
        return totals


def audit_violations(audit: Audit, since: Audit | None = None) -> list[str]:
    """Invariants 1-4 as the ledger's own audit counts them; with `since`, only those that
    appeared after that earlier audit (for tests that share one database)."""
    already = {s.id for s in since.schedules if s.oversold} if since is not None else set()
    found = [
        f"schedule {s.id} oversold: {s.booked} active bookings for capacity {s.capacity}"
        for s in audit.schedules
        if s.oversold and s.id not in already
    ]
    now = _counted(audit)
    before = _counted(since) if since is not None else dict.fromkeys(now, 0)
    found += [f"{n - before[what]} {what}" for what, n in now.items() if n > before[what]]
    return found


def _counted(audit: Audit) -> dict[str, int]:
    return {
        "duplicate numbers among active bookings": audit.duplicate_numbers,
        "patients hold two bookings of one schedule": audit.duplicate_patients,
        "per-day or per-department limit violations": audit.limit_violations,
    }


def held_violations(audit: Audit, observed: Observed) -> list[str]:
    """Invariants 1-3 as the clients saw them: numbers handed out and still held."""
    capacity = {s.id: s.capacity for s in audit.schedules}
    found: list[str] = []
    by_schedule: defaultdict[int, list[Booking]] = defaultdict(list)
    for booking in observed.held:
        by_schedule[booking.schedule_id].append(booking)
    for schedule_id, held in sorted(by_schedule.items()):
        cap = capacity.get(schedule_id, 0)
        if len(held) > cap:
            found.append(f"schedule {schedule_id}: clients hold {len(held)} of capacity {cap}")
        outside = sorted(b.number for b in held if not 1 <= b.number <= cap)
        if outside:
            found.append(f"schedule {schedule_id}: numbers outside 1..{cap} confirmed: {outside}")
        found += _repeated(schedule_id, "number", [b.number for b in held])
        found += _repeated(schedule_id, "patient", [b.patient_id for b in held])
    return found


def _repeated(schedule_id: int, what: str, values: Iterable[Value]) -> list[str]:
    twice = sorted(v for v, n in Counter(values).items() if n > 1)
    return [f"schedule {schedule_id}: {what} confirmed twice: {twice}"] if twice else []


async def lost_bookings(ledger: Ledger, observed: Observed) -> list[str]:
    """Invariant 6: every booking a client was given is in the ledger, as the client knows it."""
    found: list[str] = []
    for booking in observed.confirmed.values():
        stored = await ledger.get_booking(booking.id)
        if stored is None:
            found.append(f"confirmed booking {booking.id} is missing from the ledger")
            continue
        told = (booking.schedule_id, booking.patient_id, booking.number)
        if (stored.schedule_id, stored.patient_id, stored.number) != told:
            found.append(f"booking {booking.id} was confirmed as {told}, the ledger differs")
        if booking.id in observed.cancelled:
            if stored.status is not BookingStatus.CANCELLED:
                found.append(f"booking {booking.id} is {stored.status}, its client cancelled it")
        elif not stored.status.held and booking.id not in observed.released:
            found.append(f"booking {booking.id} is {stored.status}, its client still holds it")
    return found


def unconfirmed_bookings(audit: Audit, observed: Observed) -> list[str]:
    """Active ledger rows no client was told about: a number taken and never handed out."""
    held = Counter(b.schedule_id for b in observed.held)
    asked = {schedule_id for schedule_id, _ in observed.answers}
    return [
        f"schedule {s.id}: {s.booked} active bookings, clients hold {held[s.id]}"
        for s in audit.schedules
        if s.id in asked and s.booked != held[s.id]
    ]


def undersold(audit: Audit, observed: Observed) -> list[str]:
    """A schedule that answered sold_out must be full, unless numbers came back later."""
    sold_out = {sid for (sid, code), _ in observed.answers.items() if code == Code.SOLD_OUT}
    gone = observed.cancelled | observed.released
    returned = {b.schedule_id for b in observed.confirmed.values() if b.id in gone}
    return [
        f"schedule {s.id} answered sold_out with {s.remaining} numbers still free"
        for s in audit.schedules
        if s.id in sold_out and s.id not in returned and s.remaining > 0
    ]


def unexpected_answers(observed: Observed, allowed: Collection[str]) -> list[str]:
    """Answers other than a booking and the refusals the scenario can legitimately cause."""
    return [
        f"{count} answers {code!r}"
        for code, count in sorted(observed.codes().items())
        if code != BOOKED and code not in allowed
    ]


async def violations(
    ledger: Ledger,
    observed: Observed,
    *,
    allowed: Collection[str] | None = None,
    since: Audit | None = None,
) -> list[str]:
    """Every invariant at once; `allowed` (if given) lists the refusals the test expects,
    `since` (if given) an earlier audit whose violations are not this test's."""
    audit = await ledger.audit()
    found = [
        *audit_violations(audit, since),
        *held_violations(audit, observed),
        *await lost_bookings(ledger, observed),
        *unconfirmed_bookings(audit, observed),
        *undersold(audit, observed),
    ]
    if allowed is not None:
        found += unexpected_answers(observed, allowed)
    return found


async def money_violations(pool: asyncpg.Pool, hospital_id: str | None = None) -> list[str]:
    """Invariant 8 (API.md 1.1), from the money ledger: every booking whose money does not
    balance, described."""
    rows = await pool.fetch(query("money_violations"), hospital_id)
    return [
        f"booking {r['hospital_id']}/{r['id']} {r['status']} (payment {r['payment_status']}): "
        f"fee {r['fee_cents']}, charged {r['charged']}, refunded {r['refunded']}, "
        f"refund owed {r['refund_owed']}"
        for r in rows
    ]
