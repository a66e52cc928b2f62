"""Hospital operations (API.md 1.1): check-in at the counter, day-end settlement on demand
and suspending a schedule, each keyed by the hospital that runs it. The transitions
themselves are core.lifecycle's; this adds the hospital's calendar and the booking
service's caches.
"""

from __future__ import annotations

import datetime as dt

from core.booking import BookingService, ScheduleView
from core.domain import Booking, Code
from core.errors import SlotrushError
from core.lifecycle import checkin, settlement, suspension
from core.lifecycle.settlement import Settlement
from core.localtime import local_date


class HospitalOperations:
    def __init__(self, service: BookingService) -> None:
        self._service = service
        self._pool = service.ledger.pool

    async def _today(self, hospital_id: str) -> dt.date:
        terms = await self._service.terms.one(hospital_id)
        return local_date(self._service.clock(), terms.zone)

    async def check_in(self, hospital_id: str, staff: str, code: str) -> Booking:
        """The attended booking of this verification code, on the hospital's today."""
        today = await self._today(hospital_id)
        return await checkin.check_in(self._pool, hospital_id, staff, code, today)

    async def day_end(self, hospital_id: str, visit_date: dt.date) -> Settlement:
        """Settle a visit date now; a date the hospital's calendar has not reached is refused
        (its patients may still come)."""
        # A hospital that does not exist (or was deleted) is hospital_not_found.
        await self._service.hospitals.hospital(hospital_id)
        if visit_date > await self._today(hospital_id):
            raise SlotrushError(
                Code.INVALID_STATE, "date is after the hospital's today: nothing to settle yet"
            )
        return await settlement.settle_day(
            self._pool, self._service.strategy, hospital_id, visit_date
        )

    async def suspend(self, schedule_id: int, reason: str, *, within: str | None) -> ScheduleView:
        """Suspend the schedule (of `within` only, a hospital administrator's); the schedule
        as it is now."""
        service = self._service
        view = await service.schedule_view(schedule_id, within=within)
        await suspension.suspend(self._pool, service.strategy, view.schedule, reason)
        service.schedule_changed(view.schedule)
        return await service.schedule_view(schedule_id)
