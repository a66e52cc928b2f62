"""The hospital stops a session (a doctor is away): the schedule is closed to bookings for
good, and every booking holding one of its numbers unpaid or booked is cancelled by the
hospital (`cancelled_by` 'hospital', no breach of the patient's).

One transaction: it locks the schedule's row first, which every booking statement holds a
key share of (ledger.sql, insert_booking), so a booking either commits before the
suspension and is cancelled by it, or sees the schedule suspended and is refused. The
inventory is told in the same transaction, so a strategy with state of its own (Redis)
closes the schedule there too, durably. Suspending again changes nothing.
"""

from __future__ import annotations

import asyncpg

from core.domain import Booking, Code, Schedule
from core.errors import SlotrushError
from core.inventory import Inventory
from core.lifecycle.effects import Ending
from core.lifecycle.releasing import bookings, holds_ended
from core.queries import query as q


async def suspend(
    pool: asyncpg.Pool, inventory: Inventory, schedule: Schedule, reason: str
) -> list[Booking]:
    """Suspend the schedule; the bookings this call cancelled."""
    async with pool.acquire() as conn, conn.transaction():
        cancelled = await suspend_in(conn, inventory, schedule, reason)
    await suspended(inventory, schedule, cancelled)
    return cancelled


async def suspend_in(
    conn: asyncpg.Connection, inventory: Inventory, schedule: Schedule, reason: str
) -> list[Booking]:
    """Suspend the schedule inside the caller's transaction (a HIS sync suspends many in
    one); the caller calls `suspended` after its commit."""
    found = await conn.fetchrow(q("lock_schedule_to_suspend"), schedule.hospital_id, schedule.id)
    if found is None:
        raise SlotrushError(Code.SCHEDULE_NOT_FOUND)
    await conn.execute(q("suspend_schedule"), schedule.hospital_id, schedule.id, reason)
    await inventory.schedule_suspending(conn, schedule)
    cancelled = bookings(
        await conn.fetch(q("cancel_by_hospital"), schedule.hospital_id, schedule.id)
    )
    await holds_ended(conn, inventory, cancelled, Ending.SUSPENDED)
    return cancelled


async def suspended(inventory: Inventory, schedule: Schedule, cancelled: list[Booking]) -> None:
    """After the commit of suspend_in: the inventory closes the schedule and takes the
    cancelled bookings' numbers back."""
    await inventory.schedule_suspended(schedule)
    if cancelled:
        await inventory.numbers_freed(cancelled)
