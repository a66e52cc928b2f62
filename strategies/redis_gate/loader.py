"""Loading a slot's Redis state from the ledger.

A slot is loaded when schedules are created in it, before their opening, and whenever a
script finds it missing (a fresh Redis, a restarted one, deleted keys): Redis state is
always derived from the ledger.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import asyncpg

from core.domain import Schedule
from core.keyed import InUse
from core.keys import SlotKeys, slot_tag
from core.metrics import RECONCILER_ACTIONS
from core.queries import fetch_one
from core.queries import query as q
from core.redis_scripts import LOAD, ScriptCall

if TYPE_CHECKING:
    from strategies.redis_gate.gate import RedisGate


# Slots loaded at once for new schedules: a region's batch names many hospitals, and each
# load holds a pooled connection for its snapshot while bookings may be running.
_WARMING_AT_ONCE: Final = 4


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
        """Load a slot a script found missing: a rebuild, counted as one."""
        if await self._load(hospital_id, visit_date):
            self._rebuilt.inc()

    async def _load(self, hospital_id: str, visit_date: dt.date) -> bool:
        """Whether this call wrote the slot (False: another caller or process had)."""
        gate = self._gate
        tag = slot_tag(hospital_id, visit_date)
        slot = gate.slot_keys(tag)
        with self._loads.use(tag) as loads:
            seen = loads.finished
            async with loads.lock:
                if loads.finished != seen:
                    return False  # loaded while this caller waited for the lock
                call, config_version = await self._snapshot(slot, hospital_id, visit_date)
                if gate.rules_in_redis:
                    # Before the load, so a config change applied from now on finds the slot.
                    await gate.stores.redis.sadd(
                        gate.keys.loaded_dates(hospital_id), visit_date.isoformat()
                    )
                loaded, _ = await gate.submit(call)
                if gate.rules_in_redis:
                    await self._catch_up(hospital_id, slot, config_version)
                loads.finished += 1
        return bool(loaded)

    async def _catch_up(self, hospital_id: str, slot: SlotKeys, loaded_version: int) -> None:
        """A rules or blacklist change committed after the snapshot was applied to the loaded
        slots before this one was: copy the hospital's config again if its version moved."""
        gate = self._gate
        version = await gate.stores.pg.fetchval(q("redis_config_version"), hospital_id)
        if version != loaded_version:
            await gate.outbox.sync_config(hospital_id, [slot])

    async def add_new_schedules(self, schedules: Sequence[Schedule]) -> None:
        """Add just-created schedules (every number free) to their slots: to a slot already
        loaded by adding them, to one not loaded yet by loading it now. The first booking
        after the opening then finds its slot ready instead of loading it from the ledger,
        which is what made the cost per booking bend when thousands of schedules of
        different hospitals open at once."""
        by_slot: defaultdict[tuple[str, dt.date], list[tuple[int, str]]] = defaultdict(list)
        for s in schedules:
            by_slot[(s.hospital_id, s.visit_date)].append((s.id, f"1-{s.capacity}"))
        slots = [self._gate.slot_keys(slot_tag(*day)) for day in by_slot]
        added = await asyncio.gather(
            *(
                self._gate.submit(self._load_call(slot, items, True))
                for slot, items in zip(slots, by_slot.values(), strict=True)
            )
        )
        # An unloaded slot takes nothing in add-only mode.
        unloaded = [day for day, (_, count) in zip(by_slot, added, strict=True) if count == 0]
        turns = asyncio.Semaphore(_WARMING_AT_ONCE)

        async def warm(hospital_id: str, visit_date: dt.date) -> None:
            async with turns:
                await self._load(hospital_id, visit_date)

        await asyncio.gather(*(warm(*day) for day in unloaded))

    async def _snapshot(
        self, slot: SlotKeys, hospital_id: str, visit_date: dt.date
    ) -> tuple[ScriptCall, int]:
        """The load call for one slot, from one consistent snapshot of the ledger, and the
        hospital's config version in it."""
        async with (
            self._gate.stores.pg.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            rows = await conn.fetch(q("redis_slot_free_numbers"), hospital_id, visit_date)
            schedules = [(r["id"], r["free"]) for r in rows]
            closed = [r["id"] for r in rows if r["suspended"]]
            released = await conn.fetch(q("redis_slot_released"), hospital_id, visit_date)
            released_ids = [r["request_id"] for r in released]
            if not self._gate.rules_in_redis:
                call = self._load_call(slot, schedules, False, released=released_ids, closed=closed)
                return call, 0
            rules = await fetch_one(conn, "redis_slot_rules", hospital_id)
            blacklist = await conn.fetch(q("redis_slot_blacklist"), hospital_id)
            bookings = await conn.fetch(q("redis_slot_bookings"), hospital_id, visit_date)
        call = self._load_call(
            slot,
            schedules,
            False,
            released=released_ids,
            closed=closed,
            config=(
                rules["max_per_day"],
                rules["max_per_department_per_day"],
                rules["config_version"],
            ),
            counters=patient_counters(bookings),
            blacklist=[(r["patient_id"], r["until_ms"]) for r in blacklist],
        )
        return call, rules["config_version"]

    def _load_call(
        self,
        slot: SlotKeys,
        schedules: Sequence[tuple[int, str]],
        only_if_loaded: bool,
        *,
        released: Sequence[str] = (),
        closed: Sequence[int] = (),
        config: tuple[int, int, int] | None = None,
        counters: dict[str, int | str] | None = None,
        blacklist: Sequence[tuple[str, int]] = (),
    ) -> ScriptCall:
        counters = counters or {}
        keys = [
            slot.slot,
            slot.schedules,
            slot.blacklist,
            slot.counters,
            slot.leases,
            slot.lease_records,
            slot.in_flight,
            slot.lease_requests,
            slot.released,
            slot.closed,
            *(slot.free(schedule_id) for schedule_id, _ in schedules),
        ]
        args = [
            "1" if only_if_loaded else "0",
            *(config or ("", "", "")),
            len(schedules),
            len(counters),
            len(blacklist),
            len(released),
            len(closed),
            *(schedule_id for schedule_id, _ in schedules),
            *(free for _, free in schedules),
            *itertools.chain.from_iterable(counters.items()),
            *itertools.chain.from_iterable(blacklist),
            *released,
            *closed,
        ]
        return ScriptCall(LOAD, (len(keys), *keys, *args))


def patient_counters(bookings: Iterable[asyncpg.Record]) -> dict[str, int | str]:
    """Active bookings as the fields of a slot's counters hash (see take.lua)."""
    counts: Counter[str] = Counter()
    held: dict[str, int | str] = {}
    for b in bookings:
        patient = b["patient_id"]
        counts[f"{patient}:day"] += 1
        counts[f"{patient}:d:{b['department_id']}"] += 1
        held[f"{patient}:s:{b['schedule_id']}"] = b["request_id"]
    return {**counts, **held}
