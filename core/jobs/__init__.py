"""Durable jobs: the time-driven and queued work of the lifecycle, in PostgreSQL.

Run by pgqueuer (see runner): periodic jobs fire on a cron schedule with seconds, once per
tick across every process running jobs (the tick is claimed in the database); queued jobs
run once per item enqueued, claimed with SKIP LOCKED, retried with backoff when they fail,
and picked up again by another process when the one running them stops sending heartbeats.
Every job is idempotent by its item, so running one twice changes nothing.

Adding a job is a module here defining its `JOB` (see job), plus its line in `JOBS`.
"""

from __future__ import annotations

from typing import Final

from core.jobs import (
    deliver_notifications,
    expire_holds,
    refresh_statistics,
    refund_payments,
    send_reminders,
    settle_day,
    settle_due,
)
from core.jobs.job import Job

JOBS: Final[tuple[Job, ...]] = (
    expire_holds.JOB,
    settle_due.JOB,
    settle_day.JOB,
    refund_payments.JOB,
    deliver_notifications.JOB,
    send_reminders.JOB,
    refresh_statistics.JOB,
)
