"""Carrying out the refunds owed: each is asked of its provider until the provider confirms
it, and recorded in the money ledger once.

A sweep claims the refunds due (SKIP LOCKED, so sweeps in other processes take others) by
moving their next attempt into the future, then asks each provider with the refund's own key.
A provider down or slow leaves the refund for a later attempt, each one waiting twice as
long as the one before (up to a minute); a process killed between the provider's answer and
the ledger's commit leaves its claim to lapse, and the next attempt gets the same refund
back from the provider (the key), so the money is given back exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

import asyncpg

from core.failpoints import REFUND_AFTER_PROVIDER, failpoint
from core.payments import ledger
from core.payments.provider import PaymentProvider, ProviderUnavailable
from core.queries import query as q

log = logging.getLogger("slotrush.payments")

BATCH: Final = 100
# The longest wait between two attempts at one refund.
MAX_BACKOFF_SECONDS: Final = 60.0


def refund_key(hospital_id: str, payment_id: int) -> str:
    """The key every attempt at one payment's refund sends: the provider's answer to it is
    the same refund, however often it is asked."""
    return f"refund/{hospital_id}/{payment_id}"


async def refund_due(
    pool: asyncpg.Pool,
    providers: Mapping[str, PaymentProvider],
    *,
    claim_seconds: float,
    batch: int = BATCH,
) -> int:
    """Ask for the refunds due now; how many the providers confirmed. `claim_seconds` must
    exceed the longest call to a provider, so no other sweep asks while one is waiting."""
    claimed = await pool.fetch(q("claim_refunds_due"), batch, claim_seconds, MAX_BACKOFF_SECONDS)
    confirmed = 0
    for item in claimed:
        hospital_id, payment_id = item["hospital_id"], item["payment_id"]
        provider = providers.get(item["provider"])
        try:
            if provider is None:
                raise ProviderUnavailable(f"no provider {item['provider']!r} configured")
            refund_ref = await provider.refund(
                item["checkout_ref"], item["amount_cents"], refund_key(hospital_id, payment_id)
            )
        except ProviderUnavailable as exc:
            log.warning("refund of payment %s/%s: %s", hospital_id, payment_id, exc)
            await pool.execute(q("refund_failed"), hospital_id, payment_id, str(exc)[:500])
            continue
        failpoint(REFUND_AFTER_PROVIDER)
        await ledger.confirm_refund(pool, hospital_id, payment_id, refund_ref)
        confirmed += 1
    return confirmed
