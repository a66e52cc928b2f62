"""The port every payment provider implements, and what it answers.

A provider is reached over the network, so each call may fail or time out: that is
ProviderUnavailable, always, and the caller retries (a refund by the refund sweep, a checkout
by its patient). Checkouts and refunds carry keys of ours, so a retry never pays or refunds
twice at the provider.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from enum import StrEnum


class ProviderUnavailable(Exception):
    """The provider did not answer, answered late, or answered with a failure of its own."""


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    DECLINED = "declined"


@dataclass(frozen=True, slots=True)
class Checkout:
    """A checkout the provider opened: its reference and where the patient pays it."""

    ref: str
    url: str


@dataclass(frozen=True, slots=True)
class Notice:
    """A verified webhook: how one checkout ended."""

    # The provider's id of this notice (a duplicate delivery carries the same one).
    event_id: str
    outcome: Outcome
    checkout_ref: str
    # Ours, given when the checkout was opened: which payment it is.
    reference: str
    amount_cents: int
    # The provider's reference of the money taken; None when declined.
    charge_ref: str | None


@dataclass(frozen=True, slots=True)
class CheckoutState:
    """What the provider knows of a checkout now."""

    ref: str
    status: str
    amount_cents: int
    charge_ref: str | None
    refund_refs: tuple[str, ...]


class PaymentProvider(abc.ABC):
    name: str

    @abc.abstractmethod
    async def create_checkout(self, reference: str, amount_cents: int) -> Checkout:
        """Open a checkout for `amount_cents`; `reference` is ours, unique per payment, and
        opening it again answers the same checkout."""

    @abc.abstractmethod
    def verify_webhook(self, signature: str | None, body: bytes, now: float) -> Notice:
        """The notice of a webhook; BadSignature (core.payments.signing) if it is not the
        provider's, ValueError if it is signed but not a notice this adapter understands."""

    @abc.abstractmethod
    async def refund(self, checkout_ref: str, amount_cents: int, key: str) -> str:
        """Give back the money of a paid checkout; the provider's refund reference. The same
        `key` answers the same refund: asking again never refunds twice."""

    @abc.abstractmethod
    async def query(self, checkout_ref: str) -> CheckoutState:
        """The checkout as the provider sees it now."""

    async def close(self) -> None:
        """Release connections."""
