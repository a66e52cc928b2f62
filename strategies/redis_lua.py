"""redis-lua: one Lua script checks every rule and takes the lowest free number.

The blacklist, the rules and each patient's counters for the day are kept in Redis beside
the free numbers, so the whole decision is one atomic script; Postgres then only records it.
Ledger writes of concurrent bookings share one batched statement.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from core import ledger
from core.batching import Coalescer
from core.domain import Booking, BookingRequest
from core.keys import SlotKeys
from core.queries import query as q
from core.redis_scripts import SET_BLACKLIST, SET_RULES, TAKE, ScriptCall
from core.stores import Stores
from strategies.redis_gate.gate import RedisGate
from strategies.redis_gate.lease import Lease, epoch_ms


class RedisLua(RedisGate):
    name = "redis-lua"
    free_store = "zset"
    rules_in_redis = True

    def __init__(self, stores: Stores) -> None:
        super().__init__(stores)
        self._writes: Coalescer[Lease, Booking | None] = Coalescer(
            self._write_batch, max_in_flight=4
        )

    def _take_call(
        self, req: BookingRequest, slot: SlotKeys, free: str, now_ms: int, deadline_ms: int
    ) -> ScriptCall:
        schedule = req.schedule
        return ScriptCall(
            TAKE,
            (
                8,
                slot.slot,
                slot.schedules,
                free,
                slot.blacklist,
                slot.counters,
                slot.leases,
                slot.lease_records,
                slot.in_flight,
                schedule.id,
                req.patient_id,
                schedule.department_id,
                req.request_id,
                now_ms,
                deadline_ms,
            ),
        )

    async def _write(self, lease: Lease) -> Booking | None:
        return await self._writes.submit(lease)

    async def _write_batch(self, leases: Sequence[Lease]) -> list[Booking | None]:
        # The earliest deadline of the batch holds for all: stricter, so still safe. A lease
        # already past its deadline stays out, or it would make the whole batch too late.
        now_ms = epoch_ms()
        live = [lease for lease in leases if lease.deadline_ms > now_ms]
        written: dict[str, Booking] = {}
        if live:
            written = await ledger.insert_bookings(
                self.stores.pg,
                [(lease.req, lease.number) for lease in live],
                dt.datetime.fromtimestamp(min(lease.deadline_ms for lease in live) / 1000, dt.UTC),
            )
        return [written.get(lease.req.request_id) for lease in leases]

    async def rules_changed(self, hospital_id: str) -> None:
        rules = await self.ledger.get_rules(hospital_id)
        await self.loader.update_loaded_slots(
            hospital_id,
            lambda slot: ScriptCall(
                SET_RULES, (1, slot.slot, rules.max_per_day, rules.max_per_department_per_day)
            ),
        )

    async def blacklist_changed(self, hospital_id: str, patient_id: str) -> None:
        until_ms = await self.stores.pg.fetchval(
            q("redis_blacklist_entry"), hospital_id, patient_id
        )
        await self.loader.update_loaded_slots(
            hospital_id,
            lambda slot: ScriptCall(
                SET_BLACKLIST,
                (2, slot.slot, slot.blacklist, patient_id, "" if until_ms is None else until_ms),
            ),
        )
