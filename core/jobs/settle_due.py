"""Every minute: each hospital's visit dates whose settle_at local time has passed with
bookings still booked get a settle_day job (one per hospital and date, however many ticks
find it before it is done)."""

from __future__ import annotations

from typing import Final

from core.jobs import settle_day
from core.jobs.job import Job, JobContext, enqueue
from core.lifecycle import settlement

# Dates queued per tick; a backlog larger than this drains over the next ticks.
_DUE_PER_TICK: Final = 1000


async def _run(context: JobContext, payload: bytes | None) -> None:
    due = await settlement.due(context.stores.pg, limit=_DUE_PER_TICK)
    async with context.stores.pg.acquire() as conn, conn.transaction():
        for item in due:
            await enqueue(
                conn,
                settle_day.JOB,
                settle_day.payload(item),
                item=f"{item.hospital_id}/{item.visit_date.isoformat()}",
            )


JOB = Job("settle_due", _run, every="* * * * * 0")
