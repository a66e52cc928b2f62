"""Every second: unpaid holds past hold_expires_at expire and free their numbers, so a
lapsed hold's number is bookable again well within its expiry plus 5 seconds (invariant 9).
A tick left claimed by a process that died is run again after 3 seconds, within that bound;
two sweeps at once are safe (each skips the holds the other has locked)."""

from __future__ import annotations

from core.jobs.job import Job, JobContext
from core.lifecycle import expiry


async def _run(context: JobContext, payload: bytes | None) -> None:
    await expiry.expire_holds(context.stores.pg, context.inventory)


JOB = Job("expire_holds", _run, every="* * * * * *", stale_after=3.0)
