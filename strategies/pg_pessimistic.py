"""pg-pessimistic: lock the schedule row with SELECT … FOR UPDATE, then take a number.

Simple and obviously correct; every booking of one schedule waits in line for one row lock,
so a hot schedule runs at the speed of one transaction at a time.
"""

from __future__ import annotations

from core import ledger
from core.domain import Booking, BookingRequest, BookResult, Code, Rejected
from core.lifecycle.cancellation import cancel_by_patient
from core.queries import query as q
from core.stores import Store
from strategies.base import InventoryStrategy


class PgPessimistic(InventoryStrategy):
    name = "pg-pessimistic"
    stores_needed = frozenset({Store.POSTGRES})

    async def _book(self, req: BookingRequest) -> BookResult:
        async with self.stores.pg.acquire() as conn, conn.transaction():
            # Patient lock first, schedule lock second: the order every path keeps.
            rejected = await ledger.check_patient_day(conn, req)
            if rejected is not None:
                return rejected
            s = req.schedule
            if await conn.fetchval(q("lock_schedule"), s.hospital_id, s.id):
                return Rejected(Code.SCHEDULE_CLOSED)
            number = await conn.fetchval(q("take_lowest_free"), s.hospital_id, s.id, None)
            if number is None:
                return Rejected(Code.SOLD_OUT)
            booking = await ledger.insert_booking(conn, req, number)
            # Patient and number are settled under the locks: only a reused key can refuse.
            return booking if booking is not None else Rejected(Code.IDEMPOTENCY_CONFLICT)

    async def _cancel(self, booking: Booking) -> Booking | None:
        async with self.stores.pg.acquire() as conn, conn.transaction():
            await ledger.lock_patient_day(conn, booking)
            await conn.execute(q("lock_schedule"), booking.hospital_id, booking.schedule_id)
            cancelled = await cancel_by_patient(conn, self, booking)
            if cancelled is not None:
                await conn.execute(q("bump_version"), booking.hospital_id, booking.schedule_id)
            return cancelled
