"""Day-end settlement: every booking of a hospital's visit date still `booked` becomes a
no-show (a breach), at the hospital's settle_at local time by itself (the settle_due job)
or when its staff ask. pending_payment holds of the date are left to expiry.

In bounded batches, each one transaction that settles its bookings and adds them to the
settlement's count, so an interrupted settlement (a crash between batches) resumes where it
stopped when it runs again, and the count stays exact. Settlers of one hospital's date take
turns batch by batch (an advisory lock), so two at once settle each booking once and both
answer the final count; a cancel racing a batch either lands first (the booking is skipped)
or finds the booking settled.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import asyncpg

from core.failpoints import SETTLE_AFTER_BATCH, failpoint
from core.inventory import Inventory
from core.lifecycle import effects
from core.lifecycle.effects import Ending
from core.lifecycle.releasing import bookings
from core.queries import query as q

BATCH: Final = 500


@dataclass(frozen=True, slots=True)
class Settlement:
    hospital_id: str
    visit_date: dt.date
    started_at: dt.datetime
    finished_at: dt.datetime | None
    # Bookings this date's settlement turned into no-shows, over all its runs.
    no_shows: int


@dataclass(frozen=True, slots=True)
class Due:
    hospital_id: str
    visit_date: dt.date


async def settle_day(
    pool: asyncpg.Pool,
    inventory: Inventory,
    hospital_id: str,
    visit_date: dt.date,
    *,
    batch: int = BATCH,
) -> Settlement:
    """Settle the date; `inventory` learns of the blacklist entries its no-shows made."""
    await pool.execute(q("begin_settlement"), hospital_id, visit_date)
    while True:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(q("lock_settlement"), hospital_id, visit_date)
            settled = bookings(
                await conn.fetch(q("settle_no_shows"), hospital_id, visit_date, batch)
            )
            if not settled:
                row = await conn.fetchrow(q("finish_settlement"), hospital_id, visit_date)
                return Settlement(**dict(row))
            await effects.booking_ended(conn, inventory, settled, Ending.NO_SHOW)
        failpoint(SETTLE_AFTER_BATCH)


async def due(pool: asyncpg.Pool, *, limit: int) -> list[Due]:
    """Hospitals' visit dates whose settle_at has passed with bookings still booked."""
    rows = await pool.fetch(q("settlements_due"), limit)
    return [Due(row["hospital_id"], row["visit_date"]) for row in rows]
