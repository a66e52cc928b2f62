"""pg-optimistic: read the schedule's version without a lock, then
UPDATE … WHERE version = $v; a lost race retries after a jittered, growing pause.

No lock is held while reading, but under a flash crowd most attempts lose the race: it shows
what optimistic concurrency costs on one hot row. After the retries it answers busy.
"""

from __future__ import annotations

import asyncio
import random

from core import ledger
from core.domain import Booking, BookingRequest, BookResult, Code, Rejected
from core.lifecycle.cancellation import cancel_by_patient
from core.metrics import BUSY_RETRIES
from core.queries import fetch_one
from core.queries import query as q
from core.stores import Store
from strategies.base import InventoryStrategy

_FIRST_PAUSE = 0.002
_MAX_PAUSE = 0.1


class _LostRace(Exception):
    """Rolls back a round whose version check failed."""


class PgOptimistic(InventoryStrategy):
    name = "pg-optimistic"
    stores_needed = frozenset({Store.POSTGRES})

    async def _book(self, req: BookingRequest) -> BookResult:
        lost_race = BUSY_RETRIES.labels(self.name, "version_conflict")
        for attempt in range(self.settings.optimistic_retries):
            if attempt:
                lost_race.inc()
                # Full jitter: spreads the losers so they do not collide again in lockstep.
                pause = min(_MAX_PAUSE, _FIRST_PAUSE * 2**attempt)
                await asyncio.sleep(random.uniform(0, pause))
            result = await self._attempt(req)
            if result is not None:
                return result
        return Rejected(Code.BUSY)

    async def _attempt(self, req: BookingRequest) -> BookResult | None:
        """One optimistic round; None when another booking changed the version first."""
        async with self.stores.pg.acquire() as conn:
            # Always a row: the core only books schedules it has found.
            s = req.schedule
            seen = await fetch_one(conn, "read_version_and_free", s.hospital_id, s.id)
            if seen["suspended"]:
                return Rejected(Code.SCHEDULE_CLOSED)
            if seen["number"] is None:
                return Rejected(Code.SOLD_OUT)
            try:
                async with conn.transaction():
                    rejected = await ledger.check_patient_day(conn, req)
                    if rejected is not None:
                        return rejected
                    number = await conn.fetchval(
                        q("take_lowest_free"), s.hospital_id, s.id, seen["version"]
                    )
                    if number is None:
                        raise _LostRace
                    booking = await ledger.insert_booking(conn, req, number)
            except _LostRace:
                return None
            return booking if booking is not None else Rejected(Code.IDEMPOTENCY_CONFLICT)

    async def _cancel(self, booking: Booking) -> Booking | None:
        async with self.stores.pg.acquire() as conn, conn.transaction():
            await ledger.lock_patient_day(conn, booking)
            cancelled = await cancel_by_patient(conn, self, booking)
            if cancelled is not None:
                # Returning a number changes the schedule: readers of the old version must retry.
                await conn.execute(q("bump_version"), booking.hospital_id, booking.schedule_id)
            return cancelled
