"""pg-skip-locked: one row per number; FOR UPDATE SKIP LOCKED LIMIT 1 claims one.

Concurrent bookings of one schedule claim different numbers instead of queueing on one row,
so a hot schedule scales with connections until the numbers run out.
"""

from __future__ import annotations

import asyncpg

from core import ledger
from core.domain import Booking, BookingRequest, BookResult, Code, Rejected
from core.lifecycle.cancellation import cancel_by_patient
from core.queries import query as q
from core.stores import Store
from strategies.base import InventoryStrategy


class PgSkipLocked(InventoryStrategy):
    name = "pg-skip-locked"
    stores_needed = frozenset({Store.POSTGRES})

    async def _book(self, req: BookingRequest) -> BookResult:
        async with self.stores.pg.acquire() as conn, conn.transaction():
            rejected = await ledger.check_patient_day(conn, req)
            if rejected is not None:
                return rejected
            s = req.schedule
            # A key share of the schedule's row: a suspension waits for this booking to end.
            if await conn.fetchval(q("share_schedule"), s.hospital_id, s.id):
                return Rejected(Code.SCHEDULE_CLOSED)
            number = await self._claim_without_waiting(conn, s.hospital_id, s.id)
            if number is None:
                # Skipped rows may be claims about to roll back: "sold out" only once they end.
                number = await conn.fetchval(q("claim_free_number_waiting"), s.hospital_id, s.id)
            if number is None:
                return Rejected(Code.SOLD_OUT)
            booking = await ledger.insert_booking(conn, req, number)
            return booking if booking is not None else Rejected(Code.IDEMPOTENCY_CONFLICT)

    @staticmethod
    async def _claim_without_waiting(
        conn: asyncpg.Connection, hospital_id: str, schedule_id: int
    ) -> int | None:
        # A FOR UPDATE scan keeps the locks of rows it found already taken. If it comes back
        # empty, those locks must go before the waiting claim, or two bookers can each hold
        # a row the other waits for: the savepoint's rollback releases them.
        attempt = conn.transaction()
        await attempt.start()
        number: int | None = await conn.fetchval(q("claim_free_number"), hospital_id, schedule_id)
        if number is None:
            await attempt.rollback()
        else:
            await attempt.commit()
        return number

    async def _cancel(self, booking: Booking) -> Booking | None:
        async with self.stores.pg.acquire() as conn, conn.transaction():
            await ledger.lock_patient_day(conn, booking)
            return await cancel_by_patient(conn, self, booking)
