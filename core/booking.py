"""The booking service: what every request needs besides the strategy itself.

Schedule lookup, opening times, idempotency replays, ownership, the cancel window and the
hooks that keep a strategy's own state in step with admin changes. Rejections become
SlotrushError with the stable code here, at the edge of the core.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg

from core import ledger
from core.domain import (
    Booking,
    BookingRequest,
    BookingStatus,
    Code,
    Rejected,
    Rules,
    Schedule,
    ScheduleIn,
    ScheduleStatus,
    visit_starts_at,
)
from core.errors import SlotrushError
from core.inventory import Inventory
from core.keyed import LruCache
from core.ledger import Audit, Ledger

# The namespace of request ids derived from an Idempotency-Key (any constant will do).
_KEYED_REQUESTS = uuid.UUID("5b0e3c52-6f1e-4c0b-9a57-2f1d7d3c9e41")
# Schedules are immutable once created, so a process may keep them (and their recent
# `remaining`); this bound only stops a long-lived process from growing without end.
_SCHEDULES_KEPT = 100_000


@dataclass(frozen=True, slots=True)
class ScheduleView:
    schedule: Schedule
    remaining: int
    status: ScheduleStatus


@dataclass(frozen=True, slots=True)
class BookingOutcome:
    booking: Booking
    replayed: bool


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class BookingService:
    def __init__(self, strategy: Inventory, ledger: Ledger) -> None:
        self.strategy = strategy
        self.ledger = ledger
        self._schedules: LruCache[int, Schedule] = LruCache(_SCHEDULES_KEPT)
        # API.md lets `remaining` lag by up to a second: a crowd polling one schedule is
        # answered from here instead of counting its free numbers on every request.
        self._remaining: LruCache[int, tuple[float, int]] = LruCache(_SCHEDULES_KEPT)

    # --- schedules ----------------------------------------------------------------------

    async def schedule(self, schedule_id: int) -> Schedule:
        schedule = self._schedules.get(schedule_id)
        if schedule is None:
            schedule = await self.ledger.get_schedule(schedule_id)
            if schedule is None:
                raise SlotrushError(Code.SCHEDULE_NOT_FOUND)
            self._schedules.put(schedule_id, schedule)
        return schedule

    async def schedule_view(self, schedule_id: int) -> ScheduleView:
        schedule = await self.schedule(schedule_id)
        now = time.monotonic()
        cached = self._remaining.get(schedule_id)
        if cached is not None and cached[0] > now:
            remaining = cached[1]
        else:
            remaining = await self.ledger.remaining(schedule_id)
            self._remaining.put(schedule_id, (now + 1.0, remaining))
        return _view(schedule, remaining)

    async def list_schedules(
        self,
        *,
        hospital_id: str | None = None,
        department_id: str | None = None,
        doctor_id: str | None = None,
        visit_date: dt.date | None = None,
    ) -> list[ScheduleView]:
        rows = await self.ledger.list_schedules(
            hospital_id=hospital_id,
            department_id=department_id,
            doctor_id=doctor_id,
            visit_date=visit_date,
            limit=500,
        )
        return [_view(schedule, remaining) for schedule, remaining in rows]

    async def create_schedules(self, items: Sequence[ScheduleIn]) -> list[ScheduleView]:
        schedules = await self.ledger.create_schedules(items, utcnow())
        await self.strategy.schedules_created(schedules)
        for schedule in schedules:
            self._schedules.put(schedule.id, schedule)
        return [_view(s, s.capacity) for s in schedules]

    # --- bookings -----------------------------------------------------------------------

    async def book(
        self, patient_id: str, schedule_id: int, idempotency_key: str | None = None
    ) -> BookingOutcome:
        schedule = await self.schedule(schedule_id)
        if utcnow() < schedule.opens_at:
            raise SlotrushError(Code.NOT_OPEN)
        if idempotency_key is not None:
            replay = await self._replay(patient_id, schedule_id, idempotency_key)
            if replay is not None:
                return replay
        request = BookingRequest(
            schedule=schedule,
            patient_id=patient_id,
            request_id=request_id(patient_id, schedule_id, idempotency_key),
            idempotency_key=idempotency_key,
        )
        result = await self.strategy.book(request)
        if isinstance(result, Booking):
            return BookingOutcome(result, replayed=False)
        if idempotency_key is not None:
            # A concurrent request with the same key may have won the race to the ledger; the
            # strategy then refused this one (already_booked, idempotency_conflict, ...).
            replay = await self._replay(patient_id, schedule_id, idempotency_key)
            if replay is not None:
                return replay
        raise _error(result)

    async def _replay(self, patient_id: str, schedule_id: int, key: str) -> BookingOutcome | None:
        first = await self.ledger.booking_by_idempotency_key(patient_id, key)
        if first is None:
            return None
        if first.schedule_id != schedule_id:
            raise SlotrushError(
                Code.IDEMPOTENCY_CONFLICT, "this Idempotency-Key was used for another schedule"
            )
        return BookingOutcome(first, replayed=True)

    async def booking(self, patient_id: str, booking_id: int) -> Booking:
        booking = await self.ledger.get_booking(booking_id)
        # Another patient's booking is indistinguishable from a missing one.
        if booking is None or booking.patient_id != patient_id:
            raise SlotrushError(Code.BOOKING_NOT_FOUND)
        return booking

    async def patient_bookings(self, patient_id: str) -> list[Booking]:
        return await self.ledger.patient_bookings(patient_id)

    async def cancel(self, patient_id: str, booking_id: int) -> Booking:
        booking = await self.booking(patient_id, booking_id)
        if booking.status is not BookingStatus.BOOKED:
            return booking
        schedule = await self.schedule(booking.schedule_id)
        rules = await self.ledger.get_rules(schedule.hospital_id)
        if _cancel_window_closed(schedule, rules, utcnow()):
            raise SlotrushError(Code.CANCEL_WINDOW_CLOSED)
        cancelled = await self.strategy.cancel(booking)
        self._remaining.pop(booking.schedule_id)
        # None: a concurrent cancel got there first; answer with the booking as it is now.
        return cancelled if cancelled is not None else await self.booking(patient_id, booking_id)

    # --- admin --------------------------------------------------------------------------

    async def put_rules(self, hospital_id: str, rules: Rules) -> Rules:
        async with self._config_change(hospital_id) as conn:
            await ledger.put_rules(conn, hospital_id, rules)
        return rules

    async def put_blacklist(self, hospital_id: str, patient_id: str, until: dt.datetime) -> None:
        async with self._config_change(hospital_id) as conn:
            await ledger.put_blacklist(conn, hospital_id, patient_id, until)

    async def delete_blacklist(self, hospital_id: str, patient_id: str) -> None:
        async with self._config_change(hospital_id) as conn:
            await ledger.delete_blacklist(conn, hospital_id, patient_id)

    @contextlib.asynccontextmanager
    async def _config_change(self, hospital_id: str) -> AsyncIterator[asyncpg.Connection]:
        """A rules or blacklist change: the caller writes it in the transaction yielded, the
        strategy records and then applies what must follow it (see Inventory)."""
        async with self.ledger.transaction() as conn:
            yield conn
            await self.strategy.config_changing(conn, hospital_id)
        await self.strategy.config_changed(hospital_id)

    async def audit(self) -> Audit:
        return await self.ledger.audit()


def request_id(patient_id: str, schedule_id: int, idempotency_key: str | None) -> str:
    """The id of a booking attempt. A retry with the same Idempotency-Key is the same attempt,
    so a strategy finds what the first try left behind (a Redis lease, a ledger row)."""
    if idempotency_key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(_KEYED_REQUESTS, f"{patient_id}/{schedule_id}/{idempotency_key}"))


def _view(schedule: Schedule, remaining: int) -> ScheduleView:
    if utcnow() < schedule.opens_at:
        status = ScheduleStatus.NOT_OPEN
    elif remaining <= 0:
        status = ScheduleStatus.SOLD_OUT
    else:
        status = ScheduleStatus.OPEN
    return ScheduleView(schedule, max(remaining, 0), status)


def _cancel_window_closed(schedule: Schedule, rules: Rules, now: dt.datetime) -> bool:
    # A cutoff of 0 (the default) means no cutoff: cancelling is always allowed.
    if rules.cancel_cutoff_minutes == 0:
        return False
    cutoff = visit_starts_at(schedule.visit_date, schedule.period) - dt.timedelta(
        minutes=rules.cancel_cutoff_minutes
    )
    return now > cutoff


def _error(rejected: Rejected) -> SlotrushError:
    if rejected.code is Code.BUSY:
        return SlotrushError(Code.BUSY, retry_after=1)
    return SlotrushError(rejected.code)
