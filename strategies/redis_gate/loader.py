"""Loading a slot's Redis state from the ledger, and keeping the loaded slots in step.

A slot is loaded the first time a script finds it missing (a fresh Redis, a restarted one,
deleted keys): Redis state is always derived from the ledger.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncpg

from core.domain import Schedule
from core.keyed import InUse
from core.keys import SlotKeys, slot_tag
from core.metrics import RECONCILER_ACTIONS
from core.queries import fetch_one
from core.queries import query as q
from core.redis_scripts import LOAD, ScriptCall
from strategies.redis_gate.replies import text

if TYPE_CHECKING:
    from strategies.redis_gate.gate import RedisGate

# Blacklist and rule copies are kept for dates from yesterday on (time zones differ).
_PAST_DAYS_KEPT = 1


@dataclass
class _SlotLoads:
    """One load of a slot at a time in this process, and how many have finished."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    finished: int = 0


class SlotLoader:
    def __init__(self, gate: RedisGate) -> None:
        self._gate = gate
        # So a crowd hitting an unloaded slot reads the ledger once; the load script itself
        # copes with other processes.
        self._loads: InUse[str, _SlotLoads] = InUse(_SlotLoads)
        self._rebuilt = RECONCILER_ACTIONS.labels(gate.name, "rebuilt")

    async def load(self, hospital_id: str, visit_date: dt.date) -> None:
        tag = slot_tag(hospital_id, visit_date)
        with self._loads.use(tag) as loads:
            seen = loads.finished
            async with loads.lock:
                if loads.finished != seen:
                    return  # loaded while this caller waited for the lock
                call = await self._snapshot(self._gate.slot_keys(tag), hospital_id, visit_date)
                if self._gate.rules_in_redis:
                    await self._gate.stores.redis.sadd(
                        self._gate.keys.loaded_dates(hospital_id), visit_date.isoformat()
                    )
                loaded, _ = await self._gate.submit(call)
                loads.finished += 1
        if loaded:
            self._rebuilt.inc()

    async def add_new_schedules(self, schedules: Sequence[Schedule]) -> None:
        """Add just-created schedules (every number free) to the slots already loaded."""
        by_slot: defaultdict[str, list[tuple[int, str]]] = defaultdict(list)
        for s in schedules:
            by_slot[slot_tag(s.hospital_id, s.visit_date)].append((s.id, f"1-{s.capacity}"))
        await asyncio.gather(
            *(
                self._gate.submit(self._load_call(self._gate.slot_keys(tag), items, True))
                for tag, items in by_slot.items()
            )
        )

    async def update_loaded_slots(
        self, hospital_id: str, call_for: Callable[[SlotKeys], ScriptCall]
    ) -> None:
        """Run one call per loaded slot of the hospital from yesterday on."""
        gate = self._gate
        dates = await gate.stores.redis.smembers(gate.keys.loaded_dates(hospital_id))
        first = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=_PAST_DAYS_KEPT)
        slots = [
            gate.slot_keys(slot_tag(hospital_id, day))
            for day in (dt.date.fromisoformat(text(d)) for d in dates)
            if day >= first
        ]
        await asyncio.gather(*(gate.submit(call_for(slot)) for slot in slots))

    async def _snapshot(self, slot: SlotKeys, hospital_id: str, visit_date: dt.date) -> ScriptCall:
        """The load call for one slot, from one consistent snapshot of the ledger."""
        async with (
            self._gate.stores.pg.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            schedules = [
                (r["id"], r["free"])
                for r in await conn.fetch(q("redis_slot_free_numbers"), hospital_id, visit_date)
            ]
            if not self._gate.rules_in_redis:
                return self._load_call(slot, schedules, False)
            rules = await fetch_one(conn, "redis_slot_rules", hospital_id)
            blacklist = await conn.fetch(q("redis_slot_blacklist"), hospital_id)
            bookings = await conn.fetch(q("redis_slot_bookings"), hospital_id, visit_date)
        return self._load_call(
            slot,
            schedules,
            False,
            rules=(rules["max_per_day"], rules["max_per_department_per_day"]),
            counters=patient_counters(bookings),
            blacklist=[(r["patient_id"], r["until_ms"]) for r in blacklist],
        )

    def _load_call(
        self,
        slot: SlotKeys,
        schedules: Sequence[tuple[int, str]],
        only_if_loaded: bool,
        *,
        rules: tuple[int, int] | None = None,
        counters: Counter[str] | None = None,
        blacklist: Sequence[tuple[str, int]] = (),
    ) -> ScriptCall:
        counters = counters or Counter()
        keys = [
            slot.slot,
            slot.schedules,
            slot.blacklist,
            slot.counters,
            slot.leases,
            slot.lease_records,
            slot.in_flight,
            *(slot.free(schedule_id) for schedule_id, _ in schedules),
        ]
        args = [
            "1" if only_if_loaded else "0",
            self._gate.free_store,
            *(rules or ("", "")),
            len(schedules),
            len(counters),
            len(blacklist),
            *(schedule_id for schedule_id, _ in schedules),
            *(free for _, free in schedules),
            *itertools.chain.from_iterable(counters.items()),
            *itertools.chain.from_iterable(blacklist),
        ]
        return ScriptCall(LOAD, (len(keys), *keys, *args))


def patient_counters(bookings: Iterable[asyncpg.Record]) -> Counter[str]:
    """Active bookings as the fields of a slot's counters hash (see take.lua)."""
    counts: Counter[str] = Counter()
    for b in bookings:
        patient = b["patient_id"]
        counts[f"{patient}:day"] += 1
        counts[f"{patient}:d:{b['department_id']}"] += 1
        counts[f"{patient}:s:{b['schedule_id']}"] = 1
    return counts
