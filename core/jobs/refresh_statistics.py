"""Every five seconds: the booking tables' planner statistics are refreshed when they no
longer describe the tables (Ledger.refresh_statistics, autovacuum's own rule).

A crowd fills a day's bookings in seconds. Until they are analyzed, the rule check of a
booking is planned as if the table were empty, and reads every booking of the hospital's
day for each new one. Autovacuum looks a minute later at best, and never where it is off;
this tick looks within seconds. Two ticks at once are harmless (ANALYZE skips a table
another ANALYZE holds)."""

from __future__ import annotations

from core.jobs.job import Job, JobContext


async def _run(context: JobContext, payload: bytes | None) -> None:
    await context.stores.ledger.refresh_statistics()


JOB = Job("refresh_statistics", _run, every="* * * * * */5")
