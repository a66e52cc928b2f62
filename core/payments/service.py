"""Payments as the HTTP layer asks for them: a patient's checkout for an unpaid hold, and a
provider's notice of how a checkout ended."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from core.domain import Booking, Code
from core.errors import SlotrushError
from core.payments import ledger
from core.payments.ledger import Applied, PaymentRecord
from core.payments.provider import ProviderUnavailable
from core.payments.providers import DEFAULT, Providers
from core.payments.signing import BadSignature

log = logging.getLogger("slotrush.payments")

# Seconds a patient waits before asking again when the provider is down.
RETRY_AFTER_SECONDS = 2


class UnknownProvider(LookupError):
    """A webhook names no provider this deployment pays with."""


@dataclass(frozen=True, slots=True)
class Started:
    payment: PaymentRecord
    booking: Booking


class Payments:
    def __init__(
        self, pool: asyncpg.Pool, providers: Providers, clock: Callable[[], float] = time.time
    ) -> None:
        self._pool = pool
        self._providers = providers
        self._clock = clock

    async def checkout(self, booking: Booking) -> Started:
        """The booking's pending payment with its checkout at the provider: opened now, or the
        one still pending (asking again opens no second one)."""
        payment, paid_for = await ledger.open_payment(self._pool, booking, DEFAULT)
        if payment.checkout_url is None:
            provider = self._providers[payment.provider]
            try:
                checkout = await provider.create_checkout(payment.reference, payment.amount_cents)
            except ProviderUnavailable as exc:
                log.warning("checkout of payment %s: %s", payment.reference, exc)
                raise SlotrushError(
                    Code.PAYMENT_PROVIDER_UNAVAILABLE, retry_after=RETRY_AFTER_SECONDS
                ) from exc
            payment, paid_for = await ledger.set_checkout(
                self._pool, payment, checkout.ref, checkout.url
            )
        return Started(payment, paid_for)

    async def receive(self, provider_name: str, signature: str | None, body: bytes) -> Applied:
        """Apply a provider's webhook: bad_signature unless the provider signed it now,
        invalid_request if signed but not a notice."""
        provider = self._providers.get(provider_name)
        if provider is None:
            raise UnknownProvider(provider_name)
        try:
            notice = provider.verify_webhook(signature, body, self._clock())
        except ValueError as exc:
            raise SlotrushError(Code.INVALID_REQUEST, str(exc)) from exc
        except BadSignature as exc:
            raise SlotrushError(Code.BAD_SIGNATURE, str(exc)) from exc
        applied = await ledger.apply_notice(self._pool, provider_name, notice)
        log.info("notice %s of %s: %s", notice.event_id, notice.reference, applied)
        return applied
