"""The Redis work the ledger owes: numbers freed there to release, suspended schedules to
close, hospitals whose rules and blacklist changed, schedules whose capacity changed.

Each item is recorded in the transaction of the change that owes it, so no crash after the
commit can lose it; it is applied right after the commit and deleted once Redis has it. What
is left (a failed attempt, a process that died, Redis away) the reconcilers drain. Applying
an item twice changes nothing: a release applies once per booking (release.lua), a closing
is a set member (close.lua), a config sync carries the hospital's config version
(set_config.lua), a capacity change once by its id (resize.lua).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import asyncpg
import redis.exceptions

from core.domain import Booking, Resize, Schedule
from core.failures import STORE_FAILURES
from core.keys import SlotKeys, slot_tag
from core.ledger import booking_from_row, schedule_from_row
from core.queries import fetch_one
from core.queries import query as q
from core.redis_scripts import CLOSE, RELEASE, RESIZE, SET_CONFIG, ScriptCall
from strategies.redis_gate.replies import text

if TYPE_CHECKING:
    from strategies.redis_gate.gate import RedisGate

log = logging.getLogger("slotrush.redis")

# Items this young are left to the attempt right after their commit.
DUE_AFTER_SECONDS = 1.0
_DRAINED_PER_PASS = 500
# Rule and blacklist copies are kept for dates from yesterday on (time zones differ).
_PAST_DAYS_KEPT = 1
# What an attempt to apply an item may fail with; the item then stays for the drain.
APPLY_FAILURES: tuple[type[BaseException], ...] = (*STORE_FAILURES, redis.exceptions.RedisError)


class Outbox:
    def __init__(self, gate: RedisGate) -> None:
        self._gate = gate

    # --- releases -----------------------------------------------------------------------

    async def owe_releases(self, conn: asyncpg.Connection, bookings: Sequence[Booking]) -> None:
        await conn.execute(
            q("redis_owe_releases"), [b.hospital_id for b in bookings], [b.id for b in bookings]
        )

    async def release(self, bookings: Sequence[Booking]) -> None:
        """Return the numbers to Redis, then strike the releases off; raises if either fails."""
        gate = self._gate
        await asyncio.gather(*(gate.submit(self._release_call(b)) for b in bookings))
        for booking in bookings:
            gate.wake(booking.schedule_id)
        await gate.stores.pg.execute(
            q("redis_releases_done"), [b.hospital_id for b in bookings], [b.id for b in bookings]
        )

    def _release_call(self, booking: Booking) -> ScriptCall:
        gate = self._gate
        slot = gate.slot_keys(slot_tag(booking.hospital_id, booking.visit_date))
        keys = [slot.slot, slot.schedules, slot.free(booking.schedule_id), slot.released]
        if gate.rules_in_redis:
            keys.append(slot.counters)
        args = (
            booking.schedule_id,
            booking.number,
            booking.patient_id,
            booking.department_id,
            booking.request_id,
        )
        return ScriptCall(RELEASE, (len(keys), *keys, *args))

    # --- suspended schedules ------------------------------------------------------------

    async def owe_closure(self, conn: asyncpg.Connection, schedule: Schedule) -> None:
        await conn.execute(q("redis_owe_closures"), schedule.hospital_id, schedule.id)

    async def close(self, schedule: Schedule) -> None:
        """Close the schedule in its slot, then strike the closing off; raises if either fails."""
        gate = self._gate
        slot = gate.slot_keys(slot_tag(schedule.hospital_id, schedule.visit_date))
        await gate.submit(ScriptCall(CLOSE, (2, slot.closed, slot.free(schedule.id), schedule.id)))
        await gate.stores.pg.execute(q("redis_closures_done"), schedule.hospital_id, schedule.id)

    # --- capacity changes ---------------------------------------------------------------

    async def owe_resizes(self, conn: asyncpg.Connection, resizes: Sequence[Resize]) -> None:
        await conn.execute(
            q("redis_owe_resizes"),
            [r.schedule.hospital_id for r in resizes],
            [r.schedule.id for r in resizes],
            [r.before for r in resizes],
            [r.schedule.capacity for r in resizes],
        )

    async def resize(self, resizes: Sequence[Resize]) -> None:
        """Apply the capacity changes owed for these schedules (all of them, in order), then
        strike them off; raises if either fails."""
        by_hospital: dict[str, list[int]] = {}
        for r in resizes:
            by_hospital.setdefault(r.schedule.hospital_id, []).append(r.schedule.id)
        pg = self._gate.stores.pg
        for hospital_id, schedule_ids in by_hospital.items():
            await self._apply_resizes(
                await pg.fetch(q("redis_resizes_of"), hospital_id, schedule_ids)
            )

    async def _apply_resizes(self, rows: Sequence[asyncpg.Record]) -> None:
        """Rows of redis_resizes (`resize_id`) with their schedules, in resize id order. A
        schedule's changes build on each other, so they go in rounds: the first change of
        every schedule in one round trip, then the second, and so on."""
        gate = self._gate
        rounds: list[list[asyncpg.Record]] = []
        seen: Counter[int] = Counter()
        for row in rows:
            turn = seen[row["id"]]
            seen[row["id"]] += 1
            if turn == len(rounds):
                rounds.append([])
            rounds[turn].append(row)
        for changes in rounds:
            await asyncio.gather(*(gate.submit(self._resize_call(row)) for row in changes))
            for row in changes:
                gate.wake(row["id"])
            by_hospital: dict[str, list[int]] = {}
            for row in changes:
                by_hospital.setdefault(row["hospital_id"], []).append(row["resize_id"])
            for hospital_id, ids in by_hospital.items():
                await gate.stores.pg.execute(q("redis_resizes_done"), hospital_id, ids)

    def _resize_call(self, row: asyncpg.Record) -> ScriptCall:
        schedule = schedule_from_row(row)
        slot = self._gate.slot_keys(slot_tag(schedule.hospital_id, schedule.visit_date))
        keys = (slot.slot, slot.schedules, slot.free(schedule.id), slot.released, slot.closed)
        args = (schedule.id, row["before"], row["after"], row["resize_id"])
        return ScriptCall(RESIZE, (len(keys), *keys, *args))

    # --- rules and blacklist ------------------------------------------------------------

    async def owe_config_sync(self, conn: asyncpg.Connection, hospital_id: str) -> None:
        await conn.execute(q("redis_owe_config_sync"), hospital_id)

    async def sync_config(self, hospital_id: str, slots: Sequence[SlotKeys] | None = None) -> None:
        """Copy the hospital's rules and blacklist, as the ledger has them now, to these slots
        or else to every loaded one (and then strike the hospital's sync off)."""
        gate = self._gate
        async with (
            gate.stores.pg.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            rules = await fetch_one(conn, "redis_slot_rules", hospital_id)
            blacklist = await conn.fetch(q("redis_slot_blacklist"), hospital_id)
        version = rules["config_version"]
        args = [version, rules["max_per_day"], rules["max_per_department_per_day"]]
        for entry in blacklist:
            args += [entry["patient_id"], entry["until_ms"]]
        targets = slots if slots is not None else await self._loaded_slots(hospital_id)
        await asyncio.gather(
            *(gate.submit(ScriptCall(SET_CONFIG, (2, s.slot, s.blacklist, *args))) for s in targets)
        )
        if slots is None:
            await gate.stores.pg.execute(q("redis_config_synced"), hospital_id, version)

    async def _loaded_slots(self, hospital_id: str) -> list[SlotKeys]:
        gate = self._gate
        dates = await gate.stores.redis.smembers(gate.keys.loaded_dates(hospital_id))
        first = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=_PAST_DAYS_KEPT)
        return [
            gate.slot_keys(slot_tag(hospital_id, day))
            for day in (dt.date.fromisoformat(text(d)) for d in dates)
            if day >= first
        ]

    # --- what the attempts after the commits left ---------------------------------------

    async def drain(self) -> None:
        pg = self._gate.stores.pg
        for row in await pg.fetch(q("redis_closures_due"), DUE_AFTER_SECONDS, _DRAINED_PER_PASS):
            await self.close(schedule_from_row(row))
        await self._apply_resizes(
            await pg.fetch(q("redis_resizes_due"), DUE_AFTER_SECONDS, _DRAINED_PER_PASS)
        )
        rows = await pg.fetch(q("redis_releases_due"), DUE_AFTER_SECONDS, _DRAINED_PER_PASS)
        if rows:
            await self.release([booking_from_row(row) for row in rows])
        for row in await pg.fetch(
            q("redis_config_syncs_due"), DUE_AFTER_SECONDS, _DRAINED_PER_PASS
        ):
            await self.sync_config(row["hospital_id"])
