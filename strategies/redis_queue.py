"""redis-queue: each schedule's free numbers are tokens in Redis, taken to admit a booking.

Admission takes the lowest free number (a tiny script that also records the lease); a
refused booking or a cancellation puts it back. Redis only counts numbers; every rule is
checked afterwards in the ledger transaction, under the patient's lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator

from core import ledger
from core.domain import Booking, BookingRequest, BookResult, Rejected
from core.keyed import InUse
from core.keys import SlotKeys
from core.redis_scripts import ADMIT, ScriptCall
from core.stores import Stores
from strategies.redis_gate.gate import RedisGate
from strategies.redis_gate.lease import Lease


class RedisQueue(RedisGate):
    name = "redis-queue"
    rules_in_redis = False

    def __init__(self, stores: Stores) -> None:
        super().__init__(stores)
        self._turns: InUse[tuple[str, str, dt.date], asyncio.Lock] = InUse(asyncio.Lock)

    async def _book(self, req: BookingRequest) -> BookResult:
        async with self._patient_turn(req):
            return await super()._book(req)

    @contextlib.asynccontextmanager
    async def _patient_turn(self, req: BookingRequest) -> AsyncIterator[None]:
        """One attempt at a time per patient and day in this process.

        The ledger serialises a patient's day anyway; without this, a patient pressing
        "book" ten times would hold ten tokens while waiting there, tokens other patients
        are waiting for.
        """
        key = (req.patient_id, req.schedule.hospital_id, req.schedule.visit_date)
        with self._turns.use(key) as turn:
            async with turn:
                yield

    def _take_call(
        self,
        req: BookingRequest,
        slot: SlotKeys,
        free: str,
        now_ms: int,
        deadline_ms: int,
        lease_id: str,
    ) -> ScriptCall:
        schedule = req.schedule
        return ScriptCall(
            ADMIT,
            (
                8,
                slot.slot,
                slot.schedules,
                free,
                slot.leases,
                slot.lease_records,
                slot.in_flight,
                slot.lease_requests,
                slot.closed,
                schedule.id,
                req.patient_id,
                schedule.department_id,
                req.request_id,
                deadline_ms,
                lease_id,
            ),
        )

    async def _write(self, lease: Lease) -> Booking | Rejected | None:
        async with self.stores.pg.acquire() as conn, conn.transaction():
            rejected = await ledger.check_patient_day(conn, lease.req)
            if rejected is not None:
                return rejected
            written = await ledger.insert_bookings(conn, [(lease.req, lease.number, lease.id)])
        return written.get(lease.id)
