"""The sandbox's checkouts and refunds, and the notices it has yet to deliver: in memory, and,
given a journal file (`slotrush sandbox-pay --state FILE`), also there, so that a sandbox
killed and started again remembers what it charged, refunded and still owes a notice for, as
a real provider would.

The journal is appended to (one JSON line per change, written before the change is
answered) and replayed at start: the last line about a checkout or a notice wins. A process
killed mid-line leaves a torn last line, which replaying skips (that change was never
answered).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson


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
    def __init__(self, journal: Path | None = None) -> None:
        self.checkouts: dict[str, Checkout] = {}
        self._by_reference: dict[str, Checkout] = {}
        # Notices sent but not yet answered 2xx, by event id.
        self.undelivered: dict[str, dict[str, Any]] = {}
        self._journal = None
        if journal is not None:
            if journal.exists():
                self._replay(journal)
            self._journal = journal.open("ab")

    def open(self, reference: str, amount_cents: int) -> tuple[Checkout, bool]:
        """The checkout of this reference, and whether it was opened now."""
        found = self._by_reference.get(reference)
        if found is not None:
            return found, False
        checkout = Checkout(new_ref("co"), reference, amount_cents)
        self._add(checkout)
        self.changed(checkout)
        return checkout, True

    def refund(self, checkout: Checkout, key: str) -> tuple[Refund, bool]:
        """The checkout's refund, and whether it was made now: asked again (with any key),
        the one refund is answered."""
        if checkout.refunds:
            return checkout.refunds[0], False
        refund = Refund(new_ref("re"), checkout.amount_cents, key)
        checkout.refunds.append(refund)
        self.changed(checkout)
        return refund, True

    def changed(self, checkout: Checkout) -> None:
        """Journal the checkout as it is now (its status, charge and refund)."""
        self._write({"checkout": _checkout_record(checkout)})

    def notice_queued(self, event: dict[str, Any]) -> None:
        self.undelivered[event["id"]] = event
        self._write({"queued": event})

    def notice_delivered(self, event_id: str) -> None:
        if self.undelivered.pop(event_id, None) is not None:
            self._write({"delivered": event_id})

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def _add(self, checkout: Checkout) -> None:
        self.checkouts[checkout.ref] = checkout
        self._by_reference[checkout.reference] = checkout

    def _write(self, record: dict[str, Any]) -> None:
        if self._journal is not None:
            # Flushed to the kernel before the change is answered: a SIGKILL of this
            # process loses nothing it answered (a machine crash could; not a sandbox's case).
            self._journal.write(orjson.dumps(record) + b"\n")
            self._journal.flush()

    def _replay(self, journal: Path) -> None:
        for line in journal.read_bytes().splitlines():
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # torn by a kill mid-write: never answered
            if "checkout" in record:
                self._add(_checkout_of(record["checkout"]))
            elif "queued" in record:
                self.undelivered[record["queued"]["id"]] = record["queued"]
            elif "delivered" in record:
                self.undelivered.pop(record["delivered"], None)


def _checkout_record(checkout: Checkout) -> dict[str, Any]:
    return {
        "ref": checkout.ref,
        "reference": checkout.reference,
        "amount_cents": checkout.amount_cents,
        "status": checkout.status,
        "charge_ref": checkout.charge_ref,
        "refunds": [[r.ref, r.amount_cents, r.key] for r in checkout.refunds],
    }


def _checkout_of(record: dict[str, Any]) -> Checkout:
    refunds = [Refund(ref, amount, key) for ref, amount, key in record["refunds"]]
    return Checkout(
        record["ref"],
        record["reference"],
        record["amount_cents"],
        record["status"],
        record["charge_ref"],
        refunds,
    )
