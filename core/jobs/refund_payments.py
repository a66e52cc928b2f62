"""Every second: the refunds owed are asked of their providers, each until confirmed
(core.payments.refunds). A tick left claimed by a process that died is run again after 5
seconds; sweeps at once are safe (each claims its refunds with SKIP LOCKED)."""

from __future__ import annotations

from core.jobs.job import Job, JobContext
from core.payments import refunds

# Beyond a provider call's timeout: no other sweep asks for a refund while one waits for it.
_CLAIM_MARGIN_SECONDS = 2.0


async def _run(context: JobContext, payload: bytes | None) -> None:
    claim = context.stores.settings.pay_timeout + _CLAIM_MARGIN_SECONDS
    await refunds.refund_due(context.stores.pg, context.providers, claim_seconds=claim)


JOB = Job("refund_payments", _run, every="* * * * * *", stale_after=5.0)
