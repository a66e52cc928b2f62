"""What booking and cancelling at a hospital depend on besides the schedule itself: the
hospital's time zone, its cancel cutoff, what of it an administrator deleted and which of
its schedules it suspended.

Booking asks on every request, so each process keeps a hospital's terms for a second (as it
keeps a schedule's `remaining`): a change made through another process reaches this one
within that second; a change made through this one at once (`forget`). When they run out,
one read per hospital refreshes them and the bookings arriving meanwhile wait for it: a
crowd used to send a read each until the first came back (7% of a booking worker's CPU).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final
from zoneinfo import ZoneInfo

import asyncpg

from core.domain import Schedule
from core.keyed import LruCache
from core.localtime import UTC, visit_day_over, visit_starts_at
from core.queries import query as q

_TTL_SECONDS: Final = 1.0
_HOSPITALS_KEPT: Final = 10_000


@dataclass(frozen=True, slots=True)
class BookingTerms:
    zone: ZoneInfo = UTC
    cancel_cutoff_minutes: int = 0
    deleted: bool = False
    deleted_departments: frozenset[str] = frozenset()
    deleted_doctors: frozenset[str] = frozenset()
    # Schedules of visits from about today on that the hospital suspended (core.lifecycle).
    suspended_schedules: frozenset[int] = frozenset()

    def suspended(self, schedule: Schedule) -> bool:
        return schedule.id in self.suspended_schedules

    def closed(self, schedule: Schedule, now: dt.datetime) -> bool:
        """Closed to booking: its visit date has passed on the hospital's calendar, or its
        hospital, department or doctor was deleted."""
        return (
            self.deleted
            or schedule.department_id in self.deleted_departments
            or schedule.doctor_id in self.deleted_doctors
            or visit_day_over(schedule.visit_date, self.zone, now)
        )

    def cancel_window_closed(self, schedule: Schedule, now: dt.datetime) -> bool:
        # A cutoff of 0 (the default) means no cutoff: cancelling is always allowed.
        if self.cancel_cutoff_minutes == 0:
            return False
        starts = visit_starts_at(schedule.visit_date, schedule.period, self.zone)
        return now > starts - dt.timedelta(minutes=self.cancel_cutoff_minutes)


# A hospital the ledger does not hold yet books on v1's terms: UTC, no cutoff.
V1_TERMS: Final = BookingTerms()


class TermsCache:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._kept: LruCache[str, tuple[float, BookingTerms]] = LruCache(_HOSPITALS_KEPT)
        # The read in flight per hospital (as many as requests are waiting: bounded by them).
        self._reading: dict[str, asyncio.Task[BookingTerms]] = {}

    async def one(self, hospital_id: str, *, fresh: bool = False) -> BookingTerms:
        if fresh:
            return (await self.of((hospital_id,), fresh=True))[hospital_id]
        kept = self._kept.get(hospital_id)
        if kept is not None and kept[0] > time.monotonic():
            return kept[1]
        reading = self._reading.get(hospital_id)
        if reading is None:
            reading = asyncio.get_running_loop().create_task(self._refresh(hospital_id))
            self._reading[hospital_id] = reading
        # Shielded: the read is shared, a request that goes away must not cancel it.
        return await asyncio.shield(reading)

    async def of(
        self, hospital_ids: Collection[str], *, fresh: bool = False
    ) -> dict[str, BookingTerms]:
        """The terms of each hospital; `fresh` reads them all from the ledger."""
        now = time.monotonic()
        found: dict[str, BookingTerms] = {}
        for hospital_id in () if fresh else hospital_ids:
            kept = self._kept.get(hospital_id)
            if kept is not None and kept[0] > now:
                found[hospital_id] = kept[1]
        missing = [h for h in hospital_ids if h not in found]
        if missing:
            read = await self._read(missing)
            for hospital_id in missing:
                terms = read.get(hospital_id, V1_TERMS)
                self._kept.put(hospital_id, (now + _TTL_SECONDS, terms))
                found[hospital_id] = terms
        return found

    def forget(self, hospital_id: str) -> None:
        self._kept.pop(hospital_id)
        # A read begun before the change may return what it replaced: it must not be kept.
        self._reading.pop(hospital_id, None)

    async def _refresh(self, hospital_id: str) -> BookingTerms:
        task = asyncio.current_task()
        try:
            now = time.monotonic()
            terms = (await self._read([hospital_id])).get(hospital_id, V1_TERMS)
            if self._reading.get(hospital_id) is task:
                self._kept.put(hospital_id, (now + _TTL_SECONDS, terms))
            return terms
        finally:
            if self._reading.get(hospital_id) is task:
                del self._reading[hospital_id]

    async def _read(self, hospital_ids: list[str]) -> dict[str, BookingTerms]:
        rows = await self._pool.fetch(q("booking_terms"), hospital_ids)
        return {
            row["id"]: BookingTerms(
                zone=ZoneInfo(row["timezone"]),
                cancel_cutoff_minutes=row["cancel_cutoff_minutes"],
                deleted=row["deleted"],
                deleted_departments=frozenset(row["deleted_departments"]),
                deleted_doctors=frozenset(row["deleted_doctors"]),
                suspended_schedules=frozenset(row["suspended_schedules"]),
            )
            for row in rows
        }
