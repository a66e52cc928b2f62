"""The sandbox's checkouts and refunds, kept in memory for the life of the process."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any


def new_ref(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


@dataclass
class Refund:
    ref: str
    amount_cents: int
    key: str


@dataclass
class Checkout:
    ref: str
    # The merchant's reference (slotrush's payment), unique per checkout.
    reference: str
    amount_cents: int
    # open, succeeded or declined.
    status: str = "open"
    charge_ref: str | None = None
    # At most one: a checkout is refunded once, in full.
    refunds: list[Refund] = field(default_factory=list)

    def as_json(self, base_url: str) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "url": f"{base_url}/checkouts/{self.ref}",
            "reference": self.reference,
            "amount_cents": self.amount_cents,
            "status": self.status,
            "charge_ref": self.charge_ref,
            "refunds": [
                {"refund_ref": r.ref, "amount_cents": r.amount_cents, "key": r.key}
                for r in self.refunds
            ],
        }


class Ledger:
    def __init__(self) -> None:
        self.checkouts: dict[str, Checkout] = {}
        self._by_reference: dict[str, Checkout] = {}

    def open(self, reference: str, amount_cents: int) -> tuple[Checkout, bool]:
        """The checkout of this reference, and whether it was opened now."""
        found = self._by_reference.get(reference)
        if found is not None:
            return found, False
        checkout = Checkout(new_ref("co"), reference, amount_cents)
        self.checkouts[checkout.ref] = checkout
        self._by_reference[reference] = checkout
        return checkout, True

    def refund(self, checkout: Checkout, key: str) -> tuple[Refund, bool]:
        """The checkout's refund, and whether it was made now: asked again (with any key),
        the one refund is answered."""
        if checkout.refunds:
            return checkout.refunds[0], False
        refund = Refund(new_ref("re"), checkout.amount_cents, key)
        checkout.refunds.append(refund)
        return refund, True
