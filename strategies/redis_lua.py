"""redis-lua: one Lua script checks every rule and takes the lowest free number.

The blacklist, the rules and each patient's counters for the day are kept in Redis beside
the free numbers, so the whole decision is one atomic script; Postgres then only records it.
Ledger writes of concurrent bookings share one batched statement.
"""

from __future__ import annotations

from collections.abc import Sequence

from core import ledger
from core.batching import Coalescer
from core.domain import Booking, BookingRequest
from core.keys import SlotKeys
from core.redis_scripts import TAKE, ScriptCall
from core.stores import Stores
from strategies.redis_gate.gate import RedisGate
from strategies.redis_gate.lease import Lease


class RedisLua(RedisGate):
    name = "redis-lua"
    rules_in_redis = True

    def __init__(self, stores: Stores) -> None:
        super().__init__(stores)
        self._writes: Coalescer[Lease, Booking | None] = Coalescer(
            self._write_batch, max_in_flight=4
        )

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
            TAKE,
            (
                10,
                slot.slot,
                slot.schedules,
                free,
                slot.blacklist,
                slot.counters,
                slot.leases,
                slot.lease_records,
                slot.in_flight,
                slot.lease_requests,
                slot.closed,
                schedule.id,
                req.patient_id,
                schedule.department_id,
                req.request_id,
                now_ms,
                deadline_ms,
                lease_id,
            ),
        )

    async def _write(self, lease: Lease) -> Booking | None:
        return await self._writes.submit(lease)

    async def _write_batch(self, leases: Sequence[Lease]) -> list[Booking | None]:
        # Two requests retried with one key share a lease: it is written once. Claims are
        # made in lease id order, as the reconcilers make theirs, so they never deadlock.
        unique = sorted({lease.id: lease for lease in leases}.items())
        written = await ledger.insert_bookings(
            self.stores.pg, [(lease.req, lease.number, lease.id) for _, lease in unique]
        )
        return [written.get(lease.id) for lease in leases]
