"""Domain values shared by every layer. Plain frozen dataclasses: cheap to build, safe to share."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Period(StrEnum):
    AM = "am"
    PM = "pm"
    NIGHT = "night"


class BookingStatus(StrEnum):
    """The states of API.md 1.1's lifecycle (see core.lifecycle for the transitions)."""

    # A paid schedule's booking until it is paid, or its hold lapses at hold_expires_at.
    PENDING_PAYMENT = "pending_payment"
    BOOKED = "booked"
    CANCELLED = "cancelled"
    # The hold lapsed unpaid.
    EXPIRED = "expired"
    # Checked in with the verification code, or still booked at day-end settlement.
    ATTENDED = "attended"
    NO_SHOW = "no_show"

    @property
    def held(self) -> bool:
        """Whether the booking holds its number (counts toward capacity and every rule)."""
        return self in HELD


HELD: Final = frozenset(
    {
        BookingStatus.PENDING_PAYMENT,
        BookingStatus.BOOKED,
        BookingStatus.ATTENDED,
        BookingStatus.NO_SHOW,
    }
)
# What a patient may still cancel.
CANCELLABLE: Final = frozenset({BookingStatus.PENDING_PAYMENT, BookingStatus.BOOKED})


class CancelledBy(StrEnum):
    PATIENT = "patient"
    # The hospital suspended the schedule: no breach of the patient's.
    HOSPITAL = "hospital"


class PaymentStatus(StrEnum):
    # No payment was asked for yet (or the booking is free).
    NONE = "none"
    PENDING = "pending"
    PAID = "paid"
    REFUNDING = "refunding"
    REFUNDED = "refunded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Payment:
    """A booking's money as its patient sees it; derived from the money ledger."""

    status: PaymentStatus
    amount_cents: int
    provider: str | None = None
    provider_ref: str | None = None


class Code(StrEnum):
    """Stable error codes of API.md. Clients branch on these, never on titles."""

    INVALID_REQUEST = "invalid_request"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    BLACKLISTED = "blacklisted"
    SCHEDULE_NOT_FOUND = "schedule_not_found"
    BOOKING_NOT_FOUND = "booking_not_found"
    HOSPITAL_NOT_FOUND = "hospital_not_found"
    DEPARTMENT_NOT_FOUND = "department_not_found"
    DOCTOR_NOT_FOUND = "doctor_not_found"
    SOLD_OUT = "sold_out"
    ALREADY_BOOKED = "already_booked"
    DAILY_LIMIT = "daily_limit"
    DEPARTMENT_LIMIT = "department_limit"
    NOT_OPEN = "not_open"
    SCHEDULE_CLOSED = "schedule_closed"
    IN_USE = "in_use"
    CANCEL_WINDOW_CLOSED = "cancel_window_closed"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    RATE_LIMITED = "rate_limited"
    BUSY = "busy"
    PROFILE_NOT_FOUND = "profile_not_found"
    # A transition API.md 1.1's table of booking states does not have.
    INVALID_STATE = "invalid_state"
    # The schedule has no waiting room open now (core.waiting_room).
    WAITING_ROOM_NOT_FOUND = "waiting_room_not_found"
    # A waiting room's position token that is missing, forged, expired or another's.
    ROOM_TOKEN_INVALID = "room_token_invalid"
    # Booking a schedule whose waiting room is open without this patient's admission token.
    ADMISSION_REQUIRED = "admission_required"
    # HIS sync and the schedule upsert: a capacity below a number bookings hold (or held).
    CAPACITY_BELOW_HELD = "capacity_below_held"
    # HIS sync and the schedule upsert: an external_id naming a session of another
    # department, doctor, date or period than its schedule's.
    SCHEDULE_MOVED = "schedule_moved"
    # A payment provider's webhook whose signature is wrong, malformed or too old.
    BAD_SIGNATURE = "bad_signature"
    # The payment provider did not answer in time: ask again later.
    PAYMENT_PROVIDER_UNAVAILABLE = "payment_provider_unavailable"
    # A hospital that has set no blacklist rules (it blacklists no one by itself).
    BLACKLIST_RULES_NOT_FOUND = "blacklist_rules_not_found"
    # No undelivered notification of that id at that hospital (to send again).
    NOTIFICATION_NOT_FOUND = "notification_not_found"


# A cutoff beyond a year is no rule; unbounded, the largest put the cutoff before year 1.
MAX_CANCEL_CUTOFF_MINUTES = 525_600


@dataclass(frozen=True, slots=True)
class Rules:
    max_per_day: int = 2
    max_per_department_per_day: int = 1
    cancel_cutoff_minutes: int = 0


@dataclass(frozen=True, slots=True)
class ScheduleIn:
    hospital_id: str
    department_id: str
    doctor_id: str
    visit_date: dt.date
    period: Period
    capacity: int
    fee_cents: int = 0
    opens_at: dt.datetime | None = None
    # The hospital information system's own id of the session: creating it again is an upsert.
    external_id: str | None = None


@dataclass(frozen=True, slots=True)
class Schedule:
    """A schedule's facts. Who, when and where never change; capacity, fee and opening time
    change only by a HIS sync or an upsert by external_id (see core.his_sync)."""

    id: int
    hospital_id: str
    department_id: str
    doctor_id: str
    visit_date: dt.date
    period: Period
    capacity: int
    fee_cents: int
    opens_at: dt.datetime
    external_id: str | None = None


@dataclass(frozen=True, slots=True)
class Resize:
    """A schedule whose capacity changed from `before` (the schedule has the new one)."""

    schedule: Schedule
    before: int


@dataclass(frozen=True, slots=True)
class Booking:
    id: int
    schedule_id: int
    patient_id: str
    hospital_id: str
    department_id: str
    doctor_id: str
    visit_date: dt.date
    period: Period
    number: int
    verification_code: str
    status: BookingStatus
    # The schedule's fee when booked; a booking with one starts pending_payment.
    fee_cents: int
    created_at: dt.datetime
    cancelled_at: dt.datetime | None
    hold_expires_at: dt.datetime | None = None
    cancelled_by: CancelledBy | None = None
    attended_at: dt.datetime | None = None
    expired_at: dt.datetime | None = None
    settled_at: dt.datetime | None = None
    idempotency_key: str | None = None
    # The attempt that wrote it: the request's id, or for a Redis strategy the lease's.
    request_id: str | None = None
    # Its latest payment's, as the money ledger's transactions keep it (core.payments).
    payment_status: PaymentStatus = PaymentStatus.NONE
    payment_provider: str | None = None
    payment_ref: str | None = None

    @property
    def payment(self) -> Payment:
        return Payment(self.payment_status, self.fee_cents, self.payment_provider, self.payment_ref)


@dataclass(frozen=True, slots=True)
class BookingRequest:
    """One attempt to book. request_id makes the attempt idempotent inside the stores."""

    schedule: Schedule
    patient_id: str
    request_id: str
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A conflict as a value: strategies return it, the core turns it into an error at the edge."""

    code: Code


BookResult = Booking | Rejected


class ScheduleStatus(StrEnum):
    OPEN = "open"
    SOLD_OUT = "sold_out"
    NOT_OPEN = "not_open"
    # An extension of API.md: the visit date has passed in the hospital's time zone, or the
    # schedule's hospital, department or doctor was deleted.
    CLOSED = "closed"
    # An extension of API.md 1.1: the doctor stopped the session; its bookings were cancelled.
    SUSPENDED = "suspended"


@dataclass(frozen=True, slots=True)
class ScheduleQuery:
    """What a schedule list is filtered by; None: not filtered by that. Dates are inclusive."""

    hospital_id: str | None = None
    department_id: str | None = None
    doctor_id: str | None = None
    visit_date: dt.date | None = None
    visit_from: dt.date | None = None
    visit_to: dt.date | None = None
    period: Period | None = None
    status: ScheduleStatus | None = None


# Hospital, department, doctor and patient ids are the hospital information system's own;
# this is all the ledger (and every Redis key built from them) accepts. Use with fullmatch.
ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
