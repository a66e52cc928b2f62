"""Payments (API.md 1.1): a booking's checkout, and the answer to a provider's webhook."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from core.domain import PaymentStatus
from server.shapes import FeeCents, Serial, Shape


class PaymentCheckout(Shape):
    """The booking's payment with where its patient pays it. `provider_ref` is the
    provider's reference of the checkout."""

    booking_id: Serial
    status: PaymentStatus
    amount_cents: FeeCents
    provider: str
    provider_ref: str
    checkout_url: Annotated[str, Meta(description="Where the patient pays, at the provider.")]


class PaymentEnvelope(Shape):
    payment: PaymentCheckout


class WebhookReceipt(Shape):
    """A notice taken (an extension): what it changed, `nothing` for a duplicate, a notice
    older than the payment's state, or one naming no payment of this server."""

    received: bool
    applied: Annotated[str, Meta(description="booked, refunding, declined or nothing")]
