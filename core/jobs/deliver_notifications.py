"""Every second: post the notifications due to hospitals' webhooks (core.notifications),
until none is due or the pass's bound."""

from __future__ import annotations

from typing import Final

from core.jobs.job import Job, JobContext
from core.notifications import delivery

# Passes per run: bounds one run; what is left is the next run's.
_PASSES: Final = 10


async def _run(context: JobContext, payload: bytes | None) -> None:
    settings = context.stores.settings
    policy = delivery.Policy(
        max_attempts=settings.webhook_max_attempts,
        retry_seconds=settings.webhook_retry_seconds,
        claim_seconds=settings.webhook_timeout * 2,
    )
    for _ in range(_PASSES):
        outcome = await delivery.deliver_due(context.stores.pg, context.courier, policy)
        if outcome.delivered + outcome.failed < delivery.BATCH:
            break


JOB = Job("deliver_notifications", _run, every="* * * * * *")
