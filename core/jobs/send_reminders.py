"""Every minute: reminders for the booked visits that start within the reminder horizon."""

from __future__ import annotations

from core.jobs.job import Job, JobContext
from core.notifications import reminders


async def _run(context: JobContext, payload: bytes | None) -> None:
    await reminders.write_due(context.stores.pg, context.stores.settings.reminder_hours)


JOB = Job("send_reminders", _run, every="* * * * * 0")
