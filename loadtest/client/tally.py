"""The client's own record of every outcome, to hold against the server's audit afterwards.

Every booking attempt is counted when it starts and settled when its answer arrives; an
attempt that never settles (timeout, connection error, a user stopped mid-request) stays
"unknown" and is the only slack the invariant check allows. Tallies are plain data: they merge
(one per Locust worker, summed on the master) and travel as dicts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Confirmed:
    """A booking the server confirmed with a 201."""

    booking_id: str
    schedule_id: str
    patient_id: str
    number: int
    hospital_id: str
    department_id: str
    visit_date: str

    @classmethod
    def from_api(cls, booking: dict[str, Any]) -> Confirmed:
        return cls(
            booking_id=str(booking["id"]),
            schedule_id=str(booking["schedule_id"]),
            patient_id=str(booking["patient_id"]),
            number=int(booking["number"]),
            hospital_id=str(booking["hospital_id"]),
            department_id=str(booking["department_id"]),
            visit_date=str(booking["visit_date"]),
        )


@dataclass
class Tally:
    # Replays of one Idempotency-Key answer the same booking: keyed by id, they count once.
    confirmed: dict[str, Confirmed] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)
    cancel_unknown: set[str] = field(default_factory=set)
    started: Counter[str] = field(default_factory=Counter)
    settled: Counter[str] = field(default_factory=Counter)
    unknown: Counter[str] = field(default_factory=Counter)
    # Schedules that answered sold_out at least once: their demand exceeded their capacity.
    sold_out_seen: set[str] = field(default_factory=set)
    # already_booked for a patient holding no confirmed booking there: an earlier attempt of
    # theirs booked without the client hearing it (e.g. a retried timeout).
    already_booked_unconfirmed: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    # (patient, schedule) of every confirmed booking: an index over `confirmed`.
    _held: set[tuple[str, str]] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        self._held |= {(c.patient_id, c.schedule_id) for c in self.confirmed.values()}

    # --- recording ---------------------------------------------------------------------

    def attempt_started(self, schedule_id: str) -> None:
        self.started[schedule_id] += 1

    def booked(self, booking: dict[str, Any], *, status: int = 201) -> Confirmed:
        confirmed = Confirmed.from_api(booking)
        self.confirmed.setdefault(confirmed.booking_id, confirmed)
        self._held.add((confirmed.patient_id, confirmed.schedule_id))
        self._settle(confirmed.schedule_id, "book", status, "booked")
        return confirmed

    def rejected(self, schedule_id: str, status: int, code: str, patient_id: str) -> None:
        if code == "sold_out":
            self.sold_out_seen.add(schedule_id)
        elif code == "already_booked" and (patient_id, schedule_id) not in self._held:
            self.already_booked_unconfirmed[schedule_id] += 1
        self._settle(schedule_id, "book", status, code)

    def outcome_unknown(self, schedule_id: str, reason: str) -> None:
        self.unknown[schedule_id] += 1
        self._settle(schedule_id, "book", 0, reason)

    def retried(self, reason: str) -> None:
        """A busy or rate-limited answer that the client will retry: not yet an outcome."""
        self.retries[reason] += 1

    def cancel_answered(self, booking_id: str, status: int, code: str) -> None:
        if status == 200:
            self.cancelled.add(booking_id)
            self.cancel_unknown.discard(booking_id)
        self.answers[f"cancel {status} {code}"] += 1

    def cancel_lost(self, booking_id: str, reason: str) -> None:
        """A cancel whose answer never came: the booking may or may not be cancelled."""
        if booking_id not in self.cancelled:
            self.cancel_unknown.add(booking_id)
        self.answers[f"cancel 0 {reason}"] += 1

    def payment_answered(self, step: str, status: int, code: str) -> None:
        """A checkout, or its completion at the provider. Money is not the invariant check's
        business (the lifecycle check reads it from the ledger): counted to describe the run."""
        self.answers[f"{step} {status} {code}"] += 1

    def abandoned(self) -> None:
        """A hold its patient walked away from: the server lapses it, and its booking then
        reads `expired` (released by the server, not lost)."""
        self.answers["abandon"] += 1

    def _settle(self, schedule_id: str, kind: str, status: int, code: str) -> None:
        self.settled[schedule_id] += 1
        self.answers[f"{kind} {status} {code}"] += 1

    # --- reading -----------------------------------------------------------------------

    def active(self) -> list[Confirmed]:
        """Confirmed bookings the client knows are still held."""
        gone = self.cancelled | self.cancel_unknown
        return [c for c in self.confirmed.values() if c.booking_id not in gone]

    def unknown_outcomes(self, schedule_id: str) -> int:
        in_flight = self.started[schedule_id] - self.settled[schedule_id]
        return self.unknown[schedule_id] + max(in_flight, 0)

    def total_unknown(self) -> int:
        return sum(self.unknown_outcomes(s) for s in set(self.started) | set(self.unknown))

    # --- travel ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "confirmed": [asdict(c) for c in self.confirmed.values()],
            "cancelled": sorted(self.cancelled),
            "cancel_unknown": sorted(self.cancel_unknown),
            "started": dict(self.started),
            "settled": dict(self.settled),
            "unknown": dict(self.unknown),
            "sold_out_seen": sorted(self.sold_out_seen),
            "already_booked_unconfirmed": dict(self.already_booked_unconfirmed),
            "answers": dict(self.answers),
            "retries": dict(self.retries),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tally:
        return cls(
            confirmed={c["booking_id"]: Confirmed(**c) for c in data["confirmed"]},
            cancelled=set(data["cancelled"]),
            cancel_unknown=set(data["cancel_unknown"]),
            started=Counter(data["started"]),
            settled=Counter(data["settled"]),
            unknown=Counter(data["unknown"]),
            sold_out_seen=set(data["sold_out_seen"]),
            already_booked_unconfirmed=Counter(data["already_booked_unconfirmed"]),
            answers=Counter(data["answers"]),
            retries=Counter(data["retries"]),
        )

    def merge(self, other: Tally) -> None:
        for booking_id, confirmed in other.confirmed.items():
            self.confirmed.setdefault(booking_id, confirmed)
        self._held |= other._held
        self.cancelled |= other.cancelled
        self.cancel_unknown = (self.cancel_unknown | other.cancel_unknown) - self.cancelled
        self.sold_out_seen |= other.sold_out_seen
        for mine, theirs in (
            (self.started, other.started),
            (self.settled, other.settled),
            (self.unknown, other.unknown),
            (self.already_booked_unconfirmed, other.already_booked_unconfirmed),
            (self.answers, other.answers),
            (self.retries, other.retries),
        ):
            mine.update(theirs)
