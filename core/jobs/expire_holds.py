"""Every second: unpaid holds past hold_expires_at expire and free their numbers, so a
lapsed hold's number is bookable again well within its expiry plus 5 seconds (invariant 9)."""

from __future__ import annotations

from core.jobs.job import Job, JobContext
from core.lifecycle import expiry


async def _run(context: JobContext, payload: bytes | None) -> None:
    await expiry.expire_holds(context.stores.pg, context.inventory)


JOB = Job("expire_holds", _run, every="* * * * * *")
