"""A deliberately racy strategy, so the invariant checks can be seen to fail.

It checks, then acts, in separate round trips: the patient's rules are checked in a transaction
of their own (its lock is gone by the time the booking is written), the lowest free number is
read without a lock, and only after a pause is the booking written. One request at a time it
is correct; under concurrency many requests pass the same check and take the same number.

The ledger's partial unique indexes still refuse duplicate numbers and patients, so the tests
drop them to let the race show (tests/test_checks_catch_racy.py). The per-day limits span
schedules, where no constraint reaches: those it breaks even on the real schema.

Never registered; serve it as `tests.racy_strategy:RacyStrategy`.
"""

from __future__ import annotations

import asyncio

from core import ledger
from core.domain import Booking, BookingRequest, BookResult, Code, Rejected
from core.lifecycle.cancellation import cancel_by_patient
from core.queries import query as q
from strategies.base import InventoryStrategy

# The gap between check and act that a slower network would leave. Long enough for every
# request in flight to read the same state, so the race happens every time, not sometimes.
_CHECK_TO_ACT = 0.005


class RacyStrategy(InventoryStrategy):
    name = "racy"

    async def _book(self, req: BookingRequest) -> BookResult:
        async with self.stores.pg.acquire() as conn:
            async with conn.transaction():
                rejected = await ledger.check_patient_day(conn, req)
            if rejected is not None:
                return rejected
            s = req.schedule
            seen = await conn.fetchrow(q("read_version_and_free"), s.hospital_id, s.id)
            assert seen is not None  # the core only books schedules it has found
            if seen["number"] is None:
                return Rejected(Code.SOLD_OUT)
            await asyncio.sleep(_CHECK_TO_ACT)
            booking = await ledger.insert_booking(conn, req, seen["number"])
        # Refused by a constraint it never expected to meet: a race it did not see.
        return booking if booking is not None else Rejected(Code.BUSY)

    async def _cancel(self, booking: Booking) -> Booking | None:
        async with self.stores.pg.acquire() as conn:
            return await cancel_by_patient(conn, self, booking)
