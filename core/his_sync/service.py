"""HisSync: a hospital's schedule feed made its schedules, and the upsert by external_id.

Applying runs in one transaction per hospital: a feed is one hospital's whole schedule, at
most 10,000 rows, so one transaction keeps it all-or-nothing (a crash leaves the last feed
or this one, never half of each) and the counts it answers are what was written. Its locks
are short: the rows it changes, in id order, taken after the plan is made and held while
its statements run (every booking of those schedules waits for them, or went first), and a
lock per hospital so that two syncs (or a sync and an upsert) of one hospital take turns.

After the commit the inventory learns what changed (new schedules, capacity changes,
suspensions), each recorded in the transaction first for the strategies that keep state
outside the ledger (see core.inventory), and this process forgets what it kept of them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import asyncpg

from core import ledger
from core.booking import BookingService, ScheduleView, timed
from core.domain import Booking, Code, Resize, Schedule, ScheduleIn
from core.errors import SlotrushError
from core.his_sync import writes
from core.his_sync.feed import FeedRow, RowError
from core.his_sync.plan import (
    Hospital,
    Outcome,
    Plan,
    Update,
    cut_refusal,
    moved,
    plan_feed,
    refuse_cuts,
    update_of,
)
from core.lifecycle import suspension
from core.terms import BookingTerms

SUSPEND_REASON = "removed from the hospital's schedule feed (HIS sync)"
# Below the default PostgreSQL pool (SLOTRUSH_PG_POOL_MAX, 20): bookings keep connections.
_CLOSINGS_AT_ONCE = 16


@dataclass(frozen=True, slots=True)
class Report:
    dry_run: bool
    created: int
    updated: int
    suspended: int
    unchanged: int
    conflicts: int
    errors: int
    rows: list[Outcome]


@dataclass(frozen=True, slots=True)
class Upserted:
    views: list[ScheduleView]
    # Whether any schedule of the request was new (201) rather than all existing (200).
    created: bool


class HisSync:
    def __init__(self, service: BookingService) -> None:
        self._service = service
        self._pool = service.ledger.pool

    async def sync(
        self, hospital_id: str, rows: Sequence[FeedRow | RowError], *, dry_run: bool
    ) -> Report:
        service = self._service
        # A hospital that does not exist (or was deleted) is hospital_not_found.
        await service.hospitals.hospital(hospital_id)
        terms = await service.terms.one(hospital_id, fresh=True)
        now = service.clock()
        if dry_run:
            async with (
                self._pool.acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                plan = await self._plan(conn, hospital_id, terms, rows, now)
                refuse_cuts(plan, await writes.highest_numbers(conn, hospital_id, plan.updates))
            return _report(plan, dry_run=True)
        strategy = service.strategy
        async with self._pool.acquire() as conn, conn.transaction():
            await writes.lock_hospital(conn, hospital_id)
            plan = await self._plan(conn, hospital_id, terms, rows, now)
            changing = [u.schedule.id for u in plan.updates] + [s.id for s in plan.suspends]
            await writes.lock_schedules(conn, hospital_id, sorted(changing))
            # Under the locks: what bookings hold now is what they hold until the commit.
            refuse_cuts(plan, await writes.highest_numbers(conn, hospital_id, plan.updates))
            created = await ledger.insert_schedules(conn, [item for _, item in plan.creates], now)
            resizes = await writes.apply_updates(conn, hospital_id, plan.updates)
            if resizes:
                await strategy.capacity_changing(conn, resizes)
            cancelled: list[list[Booking]] = [
                await suspension.suspend_in(conn, strategy, s, SUSPEND_REASON)
                for s in plan.suspends
            ]
        await self._written(created, resizes, [u.schedule for u in plan.updates])
        # Each closing is its own round trips: many at once, within what the pool serves.
        for first in range(0, len(plan.suspends), _CLOSINGS_AT_ONCE):
            chunk = plan.suspends[first : first + _CLOSINGS_AT_ONCE]
            await asyncio.gather(*(strategy.schedule_suspended(s) for s in chunk))
        freed = [booking for its in cancelled for booking in its]
        if freed:
            await strategy.numbers_freed(freed)
        for schedule in plan.suspends:
            service.schedule_changed(schedule)
        return _report(plan, dry_run=False)

    async def _plan(
        self,
        conn: asyncpg.Connection,
        hospital_id: str,
        terms: BookingTerms,
        rows: Sequence[FeedRow | RowError],
        now: dt.datetime,
    ) -> Plan:
        departments, doctors = await writes.live_names(conn, hospital_id)
        live = await writes.live_schedules(conn, hospital_id)
        hospital = Hospital(hospital_id, terms, departments, doctors)
        return plan_feed(hospital, rows, live, now)

    async def upsert(self, items: Sequence[ScheduleIn]) -> Upserted:
        """POST /v1/admin/schedules: an item whose external_id names a live schedule of its
        hospital brings it to the item (as a sync row would; a conflict refuses the whole
        request, 409); every other item is created. One transaction."""
        service = self._service
        _no_repeats(items)
        now = service.clock()
        hospital_ids = {item.hospital_id for item in items}
        terms = await service.terms.of(hospital_ids, fresh=True)
        keyed: dict[str, list[str]] = defaultdict(list)
        for item in items:
            if item.external_id is not None:
                keyed[item.hospital_id].append(item.external_id)
        batch = len(items) > 1
        async with self._pool.acquire() as conn, conn.transaction():
            live: dict[str, dict[str, Schedule]] = {}
            for hospital_id in sorted(keyed):
                await writes.lock_hospital(conn, hospital_id)
                live[hospital_id] = await writes.live_schedules(
                    conn, hospital_id, keyed[hospital_id]
                )
            new: list[ScheduleIn] = []
            updates: list[Update] = []
            # Per item, to answer in order: its index in `new`, or its schedule as written.
            answers: list[int | Schedule] = []
            for i, item in enumerate(items):
                where = f"schedules[{i}]." if batch else ""
                existing = live.get(item.hospital_id, {}).get(item.external_id or "")
                if existing is None:
                    new.append(timed(item, terms[item.hospital_id], now, where))
                    answers.append(len(new) - 1)
                    continue
                if moved(existing, item):
                    raise SlotrushError(
                        Code.SCHEDULE_MOVED, f"{where}external_id names a session elsewhere"
                    )
                if item.opens_at is None:
                    item = replace(item, opens_at=existing.opens_at)
                update = update_of(existing, timed(item, terms[item.hospital_id], now, where), i)
                if update is not None:
                    updates.append(update)
                answers.append(update.updated if update else existing)
            resizes = await self._upsert_updates(conn, updates, batch)
            created = await ledger.insert_schedules(conn, new, now)
        await self._written(created, resizes, [u.schedule for u in updates])
        written = [created[at] if isinstance(at, int) else at for at in answers]
        remaining = [
            s.capacity if isinstance(at, int) else await service.ledger.remaining(s)
            for at, s in zip(answers, written, strict=True)
        ]
        views = await service.views(written, remaining)
        return Upserted(views, created=bool(created))

    async def _upsert_updates(
        self, conn: asyncpg.Connection, updates: list[Update], batch: bool
    ) -> list[Resize]:
        by_hospital: dict[str, list[Update]] = defaultdict(list)
        for update in updates:
            by_hospital[update.schedule.hospital_id].append(update)
        resizes: list[Resize] = []
        for hospital_id, its in sorted(by_hospital.items()):
            await writes.lock_schedules(conn, hospital_id, sorted(u.schedule.id for u in its))
            highest = await writes.highest_numbers(conn, hospital_id, its)
            for update in its:
                reason = cut_refusal(update, highest.get(update.schedule.id))
                if reason is not None:
                    where = f"schedules[{update.line}]." if batch else ""
                    raise SlotrushError(Code.CAPACITY_BELOW_HELD, f"{where}capacity: {reason}")
            resizes += await writes.apply_updates(conn, hospital_id, its)
        if resizes:
            await self._service.strategy.capacity_changing(conn, resizes)
        return resizes

    async def _written(
        self, created: Sequence[Schedule], resizes: Sequence[Resize], updated: Sequence[Schedule]
    ) -> None:
        """After the commit: the inventory learns, this process forgets what it kept."""
        service = self._service
        for hospital_id in {s.hospital_id for s in created}:
            service.terms.forget(hospital_id)
        if created:
            await service.strategy.schedules_created(created)
        if resizes:
            await service.strategy.capacity_changed(resizes)
        for schedule in updated:
            service.schedule_changed(schedule)
        grown = (r.schedule.capacity - r.before for r in resizes)
        await service.ledger.refresh_statistics(
            sum(s.capacity for s in created) + sum(n for n in grown if n > 0)
        )


def _no_repeats(items: Sequence[ScheduleIn]) -> None:
    seen: set[tuple[str, str]] = set()
    for i, item in enumerate(items):
        if item.external_id is None:
            continue
        key = (item.hospital_id, item.external_id)
        if key in seen:
            raise SlotrushError(Code.INVALID_REQUEST, f"schedules[{i}].external_id repeats")
        seen.add(key)


def _report(plan: Plan, *, dry_run: bool) -> Report:
    return Report(
        dry_run=dry_run,
        created=len(plan.creates),
        updated=len(plan.updates),
        suspended=len(plan.suspends),
        unchanged=plan.unchanged,
        conflicts=plan.conflicts,
        errors=plan.errors,
        rows=plan.outcomes(),
    )
