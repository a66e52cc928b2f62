"""The booking service: what every request needs besides the strategy itself.

Schedule lookup, opening and closing times in the hospital's time zone, idempotency replays,
ownership, the cancel window and the hooks that keep a strategy's own state in step with
admin changes. Rejections become SlotrushError with the stable code here, at the edge of the
core.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace

import asyncpg

from core import ledger, notifications
from core.domain import (
    CANCELLABLE,
    Booking,
    BookingRequest,
    BookingStatus,
    Code,
    PaymentStatus,
    Rejected,
    Rules,
    Schedule,
    ScheduleIn,
    ScheduleQuery,
    ScheduleStatus,
)
from core.errors import SlotrushError
from core.hospitals import Hospitals
from core.inventory import Inventory
from core.keyed import LruCache
from core.ledger import Audit, Ledger
from core.localtime import local_date, visit_starts_at
from core.paging import DEFAULT_LIMIT, Page, page_of
from core.terms import BookingTerms, TermsCache

# The namespace of request ids derived from an Idempotency-Key (any constant will do).
_KEYED_REQUESTS = uuid.UUID("5b0e3c52-6f1e-4c0b-9a57-2f1d7d3c9e41")
# A process keeps schedules (and their recent `remaining`) for a second: a HIS sync changes
# a capacity, fee or opening time, and other processes learn it within that second. The
# bound only stops a long-lived process from growing without end.
_SCHEDULES_KEPT = 100_000
_SCHEDULE_TTL_SECONDS = 1.0
# Rows a filtered schedule list reads at most per page before answering a short page.
_SCAN_BUDGET = 5_000


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
    def __init__(
        self, strategy: Inventory, ledger: Ledger, *, clock: Callable[[], dt.datetime] = utcnow
    ) -> None:
        self.strategy = strategy
        self.ledger = ledger
        self.clock = clock
        self.terms = TermsCache(ledger.pool)
        self.hospitals = Hospitals(ledger.pool, self.terms, clock, ledger.reads)
        self._schedules: LruCache[int, tuple[float, Schedule]] = LruCache(_SCHEDULES_KEPT)
        # Schedules being read again after their second was up (see schedule).
        self._rereading: set[int] = set()
        # API.md lets `remaining` lag by up to a second: a crowd polling one schedule is
        # answered from here instead of counting its free numbers on every request.
        self._remaining: LruCache[int, tuple[float, int]] = LruCache(_SCHEDULES_KEPT)

    # --- schedules ----------------------------------------------------------------------

    async def schedule(self, schedule_id: int) -> Schedule:
        now = time.monotonic()
        kept = self._schedules.get(schedule_id)
        # A crowd on one schedule must not all read it again when it expires: one does,
        # the others are answered what was kept until then.
        if kept is not None and (kept[0] > now or schedule_id in self._rereading):
            return kept[1]
        self._rereading.add(schedule_id)
        try:
            schedule = await self.ledger.get_schedule(schedule_id)
        finally:
            self._rereading.discard(schedule_id)
        if schedule is None:
            raise SlotrushError(Code.SCHEDULE_NOT_FOUND)
        self._keep(schedule)
        return schedule

    def _keep(self, schedule: Schedule) -> None:
        self._schedules.put(schedule.id, (time.monotonic() + _SCHEDULE_TTL_SECONDS, schedule))

    async def schedule_view(self, schedule_id: int, *, within: str | None = None) -> ScheduleView:
        """The schedule as a client sees it; `within`: only if it is of that hospital (a
        hospital administrator's), else schedule_not_found as if it did not exist."""
        schedule = await self.schedule(schedule_id)
        if within is not None and schedule.hospital_id != within:
            raise SlotrushError(Code.SCHEDULE_NOT_FOUND)
        now = time.monotonic()
        cached = self._remaining.get(schedule_id)
        if cached is not None and cached[0] > now:
            remaining = cached[1]
        else:
            remaining = await self.ledger.remaining(schedule)
            self._remaining.put(schedule_id, (now + 1.0, remaining))
        terms = await self.terms.one(schedule.hospital_id)
        return _view(schedule, remaining, terms, self.clock())

    async def still_sold_out(self, schedule_id: int) -> bool:
        """Whether the ledger holds no free number of an open schedule: a closed one is not
        sold out, its bookings are refused as closed."""
        schedule = await self.schedule(schedule_id)
        if _closed(await self.terms.one(schedule.hospital_id), schedule, self.clock()):
            return False
        return await self.ledger.remaining(schedule) == 0

    async def schedule_page(
        self, query: ScheduleQuery, *, after: int | None = None, limit: int = DEFAULT_LIMIT
    ) -> Page[ScheduleView, int]:
        """Up to `limit` schedules after the id `after`, in id order.

        A status filter is applied here, to the same views a single schedule gets, so rows
        are read in pages of `limit + 1` until enough match: at most _SCAN_BUDGET rows per
        call, after which the page may be short, with a key to continue after the last row
        read (the list still ends only where next_key is None).
        """
        views: list[ScheduleView] = []
        scanned = 0
        while True:
            rows = await self.ledger.list_schedules(query, after=after, limit=limit + 1)
            terms = await self.terms.of({schedule.hospital_id for schedule, _ in rows})
            now = self.clock()
            for schedule, remaining in rows:
                view = _view(schedule, remaining, terms[schedule.hospital_id], now)
                if query.status is None or view.status is query.status:
                    if len(views) == limit:
                        return Page(views, views[-1].schedule.id)
                    views.append(view)
                after = schedule.id
            scanned += len(rows)
            if len(rows) <= limit:
                return Page(views, None)
            if scanned >= _SCAN_BUDGET:
                return Page(views, after)

    async def create_schedules(self, items: Sequence[ScheduleIn]) -> list[ScheduleView]:
        """Create schedules, each timed in its hospital's zone: a visit date that has passed
        or an `opens_at` after the visit starts is invalid_request; `opens_at` defaults to
        now, or to the visit's start if that came first (a session already under way)."""
        now = self.clock()
        hospital_ids = {item.hospital_id for item in items}
        terms = await self.terms.of(hospital_ids, fresh=True)
        batch = len(items) > 1
        checked = [
            timed(item, terms[item.hospital_id], now, f"schedules[{i}]." if batch else "")
            for i, item in enumerate(items)
        ]
        schedules = await self.ledger.create_schedules(checked, now)
        # Creating revives a deleted hospital, department or doctor the schedules name.
        for hospital_id in hospital_ids:
            self.terms.forget(hospital_id)
        await self.strategy.schedules_created(schedules)
        for schedule in schedules:
            self._keep(schedule)
        return await self.views(schedules, [s.capacity for s in schedules])

    async def views(
        self, schedules: Sequence[Schedule], remaining: Sequence[int]
    ) -> list[ScheduleView]:
        """Schedules just written, as a client sees them, with their free numbers."""
        terms = await self.terms.of({s.hospital_id for s in schedules})
        now = self.clock()
        return [
            _view(s, free, terms[s.hospital_id], now)
            for s, free in zip(schedules, remaining, strict=True)
        ]

    # --- bookings -----------------------------------------------------------------------

    async def book(
        self, patient_id: str, schedule_id: int, idempotency_key: str | None = None
    ) -> BookingOutcome:
        schedule = await self.schedule(schedule_id)
        now = self.clock()
        if now < schedule.opens_at:
            raise SlotrushError(Code.NOT_OPEN)
        if idempotency_key is not None:
            # Before the closing check: a retry of a booking made before closing gets it back.
            replay = await self._replay(patient_id, schedule, idempotency_key)
            if replay is not None:
                return replay
        if _closed(await self.terms.one(schedule.hospital_id), schedule, now):
            raise SlotrushError(Code.SCHEDULE_CLOSED)
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
            replay = await self._replay(patient_id, schedule, idempotency_key)
            if replay is not None:
                return replay
        raise _error(result)

    async def replay(
        self, patient_id: str, schedule_id: int, idempotency_key: str
    ) -> BookingOutcome | None:
        """The first answer to a booking made with this key, if one was; nothing is booked."""
        return await self._replay(patient_id, await self.schedule(schedule_id), idempotency_key)

    async def _replay(self, patient_id: str, schedule: Schedule, key: str) -> BookingOutcome | None:
        first = await self.ledger.booking_by_idempotency_key(patient_id, key)
        if first is None:
            return None
        if first.schedule_id != schedule.id:
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

    async def patient_bookings(
        self, patient_id: str, *, before: int | None = None, limit: int = DEFAULT_LIMIT
    ) -> Page[Booking, int]:
        """Up to `limit` of the patient's bookings, newest first, before the id `before`."""
        rows = await self.ledger.patient_bookings(patient_id, before=before, limit=limit + 1)
        return page_of(rows, limit, lambda booking: booking.id)

    async def cancel(self, patient_id: str, booking_id: int) -> Booking:
        """Cancel a booking holding its number unpaid or booked; a cancelled one is answered
        as it is, any other state is invalid_state."""
        booking = _cancellable(await self.booking(patient_id, booking_id))
        if booking.status is BookingStatus.CANCELLED:
            return booking
        schedule = await self.schedule(booking.schedule_id)
        terms = await self.terms.one(schedule.hospital_id, fresh=True)
        if terms.cancel_window_closed(schedule, self.clock()):
            raise SlotrushError(Code.CANCEL_WINDOW_CLOSED)
        cancelled = await self.strategy.cancel(booking)
        self._remaining.pop(booking.schedule_id)
        if cancelled is not None and cancelled.payment_status is PaymentStatus.NONE:
            return cancelled
        # Its money changed in the cancel's transaction (a refund owed) after the row the
        # strategy read; or another transition got there first (a cancel, expiry, settlement).
        return _cancellable(await self.booking(patient_id, booking_id))

    def schedule_changed(self, schedule: Schedule) -> None:
        """Forget what this process keeps of a schedule's state (suspended, numbers freed or
        added, fee or opening time changed)."""
        self.terms.forget(schedule.hospital_id)
        self._schedules.pop(schedule.id)
        self._remaining.pop(schedule.id)

    # --- admin --------------------------------------------------------------------------

    async def put_rules(self, hospital_id: str, rules: Rules) -> Rules:
        async with self._config_change(hospital_id) as conn:
            await ledger.put_rules(conn, hospital_id, rules)
        self.terms.forget(hospital_id)
        return rules

    async def put_blacklist(self, hospital_id: str, patient_id: str, until: dt.datetime) -> None:
        async with self._config_change(hospital_id) as conn:
            since = await ledger.put_blacklist(conn, hospital_id, patient_id, until)
            await notifications.blacklisted(
                conn, hospital_id, patient_id, until=until, since=since, source="manual"
            )

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

    async def audit(self, hospital_id: str | None = None) -> Audit:
        """Over every hospital, or over `hospital_id` only (its administrator's audit)."""
        return await self.ledger.audit(hospital_id)


def request_id(patient_id: str, schedule_id: int, idempotency_key: str | None) -> str:
    """The id of a booking attempt. A retry with the same Idempotency-Key is the same attempt,
    so a strategy finds what the first try left behind (a Redis lease, a ledger row)."""
    if idempotency_key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(_KEYED_REQUESTS, f"{patient_id}/{schedule_id}/{idempotency_key}"))


def _closed(terms: BookingTerms, schedule: Schedule, now: dt.datetime) -> bool:
    """Closed to booking, whether by its dates, a deletion or a suspension."""
    return terms.suspended(schedule) or terms.closed(schedule, now)


def _cancellable(booking: Booking) -> Booking:
    if booking.status not in CANCELLABLE and booking.status is not BookingStatus.CANCELLED:
        raise SlotrushError(Code.INVALID_STATE, f"a booking {booking.status} cannot be cancelled")
    return booking


def _view(
    schedule: Schedule, remaining: int, terms: BookingTerms, now: dt.datetime
) -> ScheduleView:
    # Suspended and closed first: such a schedule is not sold out, and it was open once.
    if terms.suspended(schedule):
        status = ScheduleStatus.SUSPENDED
    elif terms.closed(schedule, now):
        status = ScheduleStatus.CLOSED
    elif now < schedule.opens_at:
        status = ScheduleStatus.NOT_OPEN
    elif remaining <= 0:
        status = ScheduleStatus.SOLD_OUT
    else:
        status = ScheduleStatus.OPEN
    return ScheduleView(schedule, max(remaining, 0), status)


def timed(item: ScheduleIn, terms: BookingTerms, now: dt.datetime, where: str) -> ScheduleIn:
    """`item` with its opening time, if its times make sense in its hospital's zone."""
    if item.visit_date < local_date(now, terms.zone):
        raise SlotrushError(
            Code.INVALID_REQUEST, f"{where}visit_date has passed in the hospital's time zone"
        )
    starts = visit_starts_at(item.visit_date, item.period, terms.zone)
    if item.opens_at is None:
        return replace(item, opens_at=min(now, starts))
    if item.opens_at > starts:
        raise SlotrushError(Code.INVALID_REQUEST, f"{where}opens_at is after the visit starts")
    return item


def _error(rejected: Rejected) -> SlotrushError:
    if rejected.code is Code.BUSY:
        return SlotrushError(Code.BUSY, retry_after=1)
    return SlotrushError(rejected.code)
