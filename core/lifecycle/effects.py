"""What follows a transition, written in the transaction that makes it.

Every transition of core.lifecycle ends its transaction with one call here per kind of
follow-up. This is where the parts of API.md 1.1 attach, each as lines in these functions,
never as a change to the transitions:
- refunds (core.payments): a paid booking cancelled (either way), expired or settled as a
  no-show is refunded (a refund work item in the money ledger, retried by a job until
  confirmed);
- automatic blacklisting: a no-show, and a cancel by the patient (a late one counting
  double), are breach events counted against the hospital's blacklist rules;
- notifications: an outbox row for the hospital's webhook (cancelled by the hospital,
  refunded, blacklisted).
`conn` is inside the transaction; the bookings are as the transition left them.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import asyncpg

from core.domain import Booking
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


async def booking_ended(conn: asyncpg.Connection, bookings: Sequence[Booking], how: Ending) -> None:
    """Bookings that will never be attended: refunds, breach events, notifications."""
    await money.owe_refunds(conn, bookings)


async def booking_attended(conn: asyncpg.Connection, booking: Booking) -> None:
    """A booking checked in at the hospital."""
