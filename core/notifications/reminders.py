"""Reminders: one per booked booking whose visit starts within the reminder horizon
(`SLOTRUSH_REMINDER_HOURS`, 24), written by a job's sweep over every hospital with a
webhook_url; its dedupe id makes each booking's reminder one, however often it runs."""

from __future__ import annotations

import asyncpg

from core.queries import query as q


async def write_due(pool: asyncpg.Pool, hours: int) -> int:
    """Write the reminders now due; how many were new."""
    status = await pool.execute(q("write_reminders"), hours)
    return int(status.split()[-1])
