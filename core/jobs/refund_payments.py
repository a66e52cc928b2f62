"""Every second: the refunds owed are asked of their providers, each until confirmed
(core.payments.refunds)."""

from __future__ import annotations

from core.jobs.job import Job, JobContext
from core.payments import refunds

# Beyond a provider call's timeout: no other sweep asks for a refund while one waits for it.
_CLAIM_MARGIN_SECONDS = 2.0


async def _run(context: JobContext, payload: bytes | None) -> None:
    claim = context.stores.settings.pay_timeout + _CLAIM_MARGIN_SECONDS
    await refunds.refund_due(context.stores.pg, context.providers, claim_seconds=claim)


JOB = Job("refund_payments", _run, every="* * * * * *")
