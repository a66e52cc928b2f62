"""What follows a transition, written in the transaction that makes it.

Every transition of core.lifecycle ends its transaction with one call here per kind of
follow-up, never with a change to the transitions themselves:
- automatic blacklisting (core.blacklisting): a no-show, and a cancel by the patient (a
  late one counting double), are breaches counted against the hospital's blacklist rules;
- notifications (core.notifications): bookings the hospital cancelled (a suspension);
  a blacklisting is notified where it is made;
- refunds (core.payments): a paid booking cancelled (either way), expired or settled as a
  no-show is refunded (a refund work item in the money ledger, retried by a job until
  confirmed).
`conn` is inside the transaction; the bookings are as the transition left them; the
inventory records what a strategy with state of its own owes (a blacklist to copy).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import asyncpg

from core import blacklisting, notifications
from core.blacklisting import Breach
from core.domain import Booking
from core.inventory import Inventory
from core.payments import ledger as money


class Ending(StrEnum):
    """How held bookings stopped being what they were."""

    # Cancelled by the patient (cancelled_by 'patient').
    CANCELLED = "cancelled"
    # Cancelled by the hospital, which suspended the schedule: no breach of the patient's.
    SUSPENDED = "suspended"
    # The hold lapsed unpaid.
    EXPIRED = "expired"
    # Still booked at day-end settlement: a breach.
    NO_SHOW = "no_show"


# The breach each ending is, if any.
_BREACHES: dict[Ending, Breach] = {
    Ending.CANCELLED: Breach.CANCELLATION,
    Ending.NO_SHOW: Breach.NO_SHOW,
}


async def booking_ended(
    conn: asyncpg.Connection, inventory: Inventory, bookings: Sequence[Booking], how: Ending
) -> None:
    """Bookings that will never be attended: refunds, breach events, notifications."""
    await money.owe_refunds(conn, bookings)
    breach = _BREACHES.get(how)
    if breach is not None:
        await blacklisting.breaches(conn, inventory, bookings, breach)
    if how is Ending.SUSPENDED:
        await notifications.bookings(conn, notifications.Kind.CANCELLED_BY_HOSPITAL, bookings)


async def booking_attended(conn: asyncpg.Connection, booking: Booking) -> None:
    """A booking checked in at the hospital."""
