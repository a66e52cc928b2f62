"""The money ledger's transactions: payments opened, notices applied, refunds owed and
confirmed. Each is one PostgreSQL transaction that changes a payment only from the state it
leaves, and ends by deriving the booking's payment from its latest payment.

Locks are taken booking first, payment second, as every lifecycle transition does (it locks
the booking, then owes the refunds of its payments), so a notice racing an expiry or a cancel
never deadlocks with it: whichever locks the booking first decides, and a payment confirmed
for a booking that stopped holding its number is charged and owed back in one transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import asyncpg

from core.domain import Booking, BookingStatus, Code, PaymentStatus
from core.errors import SlotrushError
from core.ledger import booking_from_row
from core.payments.provider import Notice, Outcome
from core.queries import query as q


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    hospital_id: str
    id: int
    booking_id: int
    provider: str
    amount_cents: int
    status: str
    checkout_ref: str | None
    checkout_url: str | None

    @property
    def reference(self) -> str:
        """Ours, given to the provider with the checkout: hospital ids hold no '/'."""
        return f"{self.hospital_id}/{self.id}"


def payment_from_row(row: asyncpg.Record) -> PaymentRecord:
    return PaymentRecord(
        hospital_id=row["hospital_id"],
        id=row["id"],
        booking_id=row["booking_id"],
        provider=row["provider"],
        amount_cents=row["amount_cents"],
        status=row["status"],
        checkout_ref=row["checkout_ref"],
        checkout_url=row["checkout_url"],
    )


def parse_reference(reference: str) -> tuple[str, int] | None:
    hospital_id, _, payment_id = reference.rpartition("/")
    if not hospital_id or not payment_id.isdigit() or len(payment_id) > 18:
        return None
    return hospital_id, int(payment_id)


class Applied(StrEnum):
    """What a notice did."""

    # The payment was paid and its booking booked.
    BOOKED = "booked"
    # Paid for a booking that no longer held its number: charged and owed back.
    REFUNDING = "refunding"
    DECLINED = "declined"
    # Nothing: a duplicate, a notice older than the payment's state, or not one of ours.
    NOTHING = "nothing"


async def open_payment(
    pool: asyncpg.Pool, booking: Booking, provider: str
) -> tuple[PaymentRecord, Booking]:
    """The booking's pending payment, opened now unless one is pending already, and the
    booking as it is then; only an unpaid hold may be paid (invalid_state otherwise)."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(q("lock_booking_to_pay"), booking.hospital_id, booking.id)
        if row is None:
            raise SlotrushError(Code.BOOKING_NOT_FOUND)
        locked = booking_from_row(row)
        if locked.status is not BookingStatus.PENDING_PAYMENT or locked.fee_cents <= 0:
            raise SlotrushError(Code.INVALID_STATE, f"a {locked.status} booking has nothing to pay")
        pending = await conn.fetchrow(
            q("pending_payment_of_booking"), locked.hospital_id, locked.id
        )
        if pending is not None:
            return payment_from_row(pending), locked
        created = await conn.fetchrow(
            q("insert_payment"), locked.hospital_id, locked.id, provider, locked.fee_cents
        )
        return payment_from_row(created), await _sync(conn, locked.hospital_id, locked.id)


async def set_checkout(
    pool: asyncpg.Pool, payment: PaymentRecord, ref: str, url: str
) -> tuple[PaymentRecord, Booking]:
    """The provider's checkout of the payment, and the booking that now names it."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(q("set_checkout"), payment.hospital_id, payment.id, ref, url)
        return payment_from_row(row), await _sync(conn, payment.hospital_id, payment.booking_id)


async def _sync(conn: asyncpg.Connection, hospital_id: str, booking_id: int) -> Booking:
    """Derive the booking's payment from its latest payment; the booking as it is then."""
    return booking_from_row(await conn.fetchrow(q("sync_booking_payment"), hospital_id, booking_id))


async def apply_notice(pool: asyncpg.Pool, provider: str, notice: Notice) -> Applied:
    """Apply a provider's verified notice, once however often it comes."""
    key = parse_reference(notice.reference)
    if key is None:
        return Applied.NOTHING
    hospital_id, payment_id = key
    async with pool.acquire() as conn, conn.transaction():
        known = await conn.fetchrow(q("lock_payment"), hospital_id, payment_id)
        if known is None:
            return Applied.NOTHING
        await conn.execute(q("lock_booking_to_pay"), hospital_id, known["booking_id"])
        payment = payment_from_row(await conn.fetchrow(q("lock_payment"), hospital_id, payment_id))
        if not _names(payment, provider, notice):
            return Applied.NOTHING
        applied = await _apply(conn, payment, notice)
        if applied is not Applied.NOTHING:
            await _sync(conn, hospital_id, payment.booking_id)
        return applied


def _names(payment: PaymentRecord, provider: str, notice: Notice) -> bool:
    """Whether the notice is about this payment, as the provider opened it."""
    return (
        payment.provider == provider
        and payment.amount_cents == notice.amount_cents
        and payment.checkout_ref in (None, notice.checkout_ref)
    )


async def _apply(conn: asyncpg.Connection, payment: PaymentRecord, notice: Notice) -> Applied:
    h, p = payment.hospital_id, payment.id
    if notice.outcome is Outcome.DECLINED:
        declined = await conn.fetchrow(q("decline_payment"), h, p, notice.checkout_ref)
        return Applied.NOTHING if declined is None else Applied.DECLINED
    charged = await conn.fetchval(q("charge_payment"), h, p, notice.checkout_ref, notice.charge_ref)
    if charged is None:
        return Applied.NOTHING
    if await conn.fetchrow(q("book_paid"), h, payment.booking_id) is not None:
        return Applied.BOOKED
    await conn.execute(q("owe_refunds"), h, [payment.booking_id])
    return Applied.REFUNDING


async def owe_refunds(conn: asyncpg.Connection, ended: Sequence[Booking]) -> None:
    """Inside the transaction that ended these bookings: the money paid for them is owed back
    (a refund work item each, which the refund sweep carries out)."""
    by_hospital: defaultdict[str, list[int]] = defaultdict(list)
    for booking in ended:
        if booking.fee_cents > 0 and booking.payment_status is not PaymentStatus.NONE:
            by_hospital[booking.hospital_id].append(booking.id)
    for hospital_id, ids in by_hospital.items():
        for row in await conn.fetch(q("owe_refunds"), hospital_id, ids):
            await _sync(conn, hospital_id, row["booking_id"])


async def confirm_refund(
    pool: asyncpg.Pool, hospital_id: str, payment_id: int, refund_ref: str
) -> None:
    """The provider confirmed the refund: into the ledger, once."""
    async with pool.acquire() as conn, conn.transaction():
        booking_id = await conn.fetchval(q("confirm_refund"), hospital_id, payment_id, refund_ref)
        if booking_id is not None:
            await _sync(conn, hospital_id, booking_id)
